package scale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// BenchmarkDriftScanAgent scans a fleet of kind-1 hosts (default 50, each
// with 200 resources: files, packages, services) for drift, side by side
// on the same hosts in the same run: through the driftless agent (its
// first contact, with the binary's copy, then a warm scan), with today's
// shell probes, and the floor: one SSH call per host running stat and
// sha256sum over all files, dpkg-query over all packages and systemctl
// is-active over all units (which fails fast on these hosts without
// systemd, as the service probe does). It reports the processes each
// starts on one host. Run it with -benchtime=1x.
func BenchmarkDriftScanAgent(b *testing.B) {
	if testing.Short() {
		need.Optional(b, "scale benchmark: skipped with -short (it starts a fleet of hosts)")
	}
	if os.Geteuid() != 0 {
		need.Missing(b, "scale benchmark: needs root for its test hosts")
	}
	want := envInt(b, "DRIFTLESS_SCALE_HOSTS", 50)
	m := mixFor(envInt(b, "DRIFTLESS_SCALE_RESOURCES", 200))
	par := envInt(b, "DRIFTLESS_SCALE_PARALLELISM", ssh.DefaultParallelism)
	bin := filepath.Join(b.TempDir(), "driftless")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/driftless")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build driftless: %v\n%s", err, out)
	}
	lab := hosts.NewLab(b, hosts.Options{})
	var fleet []*hosts.Host
	for i := 0; i < want; i++ {
		h, err := lab.StartKind1(fmt.Sprintf("sa%d-%d", lab.N, i))
		if err != nil {
			b.Logf("host %d of %d did not start (%v): measuring %d hosts", i+1, want, err, len(fleet))
			break
		}
		if err := m.seed(h.Root); err != nil {
			b.Fatalf("seed %s: %v", h.Name, err)
		}
		fleet = append(fleet, h)
	}
	if len(fleet) == 0 {
		b.Fatal("no host started")
	}
	rs := m.resources()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	pool := ssh.NewPool(ssh.Config{User: "root", KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Logger: zerolog.Nop()}, 0)
	defer pool.Close()
	d := &agent.Deployer{Own: bin}
	remotes := map[string]*agent.Remote{}
	for _, h := range fleet {
		r := agent.NewRemote(d)
		remotes[h.Name] = r
		defer r.Close()
	}
	viaAgent := func(t *ssh.Transport, h *hosts.Host) targets.Transport {
		return &agent.Transport{Starter: t, Agent: remotes[h.Name]}
	}
	var files, units []string
	for _, r := range rs {
		switch r.Kind {
		case "file":
			files = append(files, r.Name)
		case "service":
			units = append(units, r.Name+".service")
		}
	}
	floorScript := "stat -c '%a %u %g %U %G %F' -- " + strings.Join(files, " ") + " 2>/dev/null; sha256sum -- " + strings.Join(files, " ") +
		" 2>/dev/null; dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\\n' -- " + strings.Join(basePackages[:m.Packages], " ") +
		"; systemctl is-active -- " + strings.Join(units, " ") + " 2>/dev/null; true"
	floor := func() (time.Duration, error) {
		start := time.Now()
		errs := ssh.ForEach(ctx, par, fleet, func(ctx context.Context, h *hosts.Host) error {
			t, err := pool.Get(ctx, h.Name, ssh.Config{Address: h.Address})
			if err != nil {
				return err
			}
			res, err := t.Run(ctx, floorScript, nil)
			if err == nil && len(res.Stdout) == 0 {
				err = fmt.Errorf("floor on %s: no output", h.Name)
			}
			return err
		})
		return time.Since(start), errors.Join(errs...)
	}
	counter := fleet[0]
	lastPid := func() int {
		var pid int
		if _, err := fmt.Sscan(counter.MustExec(b, "cat /proc/sys/kernel/ns_last_pid"), &pid); err != nil {
			b.Fatal(err)
		}
		return pid
	}
	// Open every connection first: no variant pays the handshakes.
	if _, err := floor(); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	type measure struct {
		wall  time.Duration
		procs int
	}
	run := func(name string, fn func() (time.Duration, error)) measure {
		before := lastPid()
		wall, err := fn()
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		// The counter's read starts two processes (a shell and cat).
		return measure{wall, lastPid() - before - 2}
	}
	scanWith := func(via func(*ssh.Transport, *hosts.Host) targets.Transport) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			res, err := scan(ctx, pool, fleet, rs, par, via)
			if err == nil {
				err = res.check(fleet, m)
			}
			return res.Wall, err
		}
	}
	var cold, warm, shell, fl measure
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i == 0 {
			cold = run("agent, first contact", scanWith(viaAgent))
		}
		warm = run("agent", scanWith(viaAgent))
		fl = run("floor", floor)
		shell = run("shell", scanWith(nil))
	}
	b.StopTimer()
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(fleet)), "hosts")
	b.ReportMetric(float64(len(rs)), "resources/host")
	b.ReportMetric(cold.wall.Seconds(), "agent-first-contact-s")
	b.ReportMetric(warm.wall.Seconds(), "agent-s")
	b.ReportMetric(fl.wall.Seconds(), "floor-s")
	b.ReportMetric(shell.wall.Seconds(), "shell-s")
	b.ReportMetric(float64(warm.procs), "agent-procs/host")
	b.ReportMetric(float64(fl.procs), "floor-procs/host")
	b.ReportMetric(float64(shell.procs), "shell-procs/host")
	b.ReportMetric(warm.wall.Seconds()/fl.wall.Seconds(), "x-agent/floor")
	b.ReportMetric(shell.wall.Seconds()/warm.wall.Seconds(), "x-shell/agent")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
}
