package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// fleetAgents keeps one agent per host of a fleet, across scans, as the
// daemon keeps one per host connection.
type fleetAgents struct {
	d       *agent.Deployer
	mu      sync.Mutex
	remotes map[string]*agent.Remote
}

func newFleetAgents(bin string) *fleetAgents {
	return &fleetAgents{d: &agent.Deployer{Own: bin}, remotes: map[string]*agent.Remote{}}
}

// via is the transport scan observes h through: its agent over t.
func (a *fleetAgents) via(t *ssh.Transport, h *hosts.Host) targets.Transport {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.remotes[h.Name]
	if !ok {
		r = agent.NewRemote(a.d)
		a.remotes[h.Name] = r
	}
	return &agent.Transport{Starter: t, Agent: r}
}

// Close ends every agent's session; the next scan starts them again.
func (a *fleetAgents) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, r := range a.remotes {
		r.Close()
		delete(a.remotes, name)
	}
}

// BenchmarkDriftScanAgent scans a fleet of kind-1 hosts (default 50, each
// with 200 resources: files, packages, services) for drift, side by side
// on the same hosts in the same run:
//
//   - agent: the daemon's scan (targets.PlanHost through each host's
//     driftless agent, kept across scans), after a first contact that
//     copies the binary to every host (measured apart);
//   - floor: one SSH call per host running stat and sha256sum over all
//     files, dpkg-query over all packages and systemctl is-active over all
//     units (which fails fast on these hosts without systemd, as the
//     service probe does);
//   - native: one SSH call per host running a small native program
//     (test/nativefloor) that does the same in one process;
//   - oldprobes: the shell probes driftless observed with before the agent
//     (oldprobes_test.go), one batched script per host.
//
// Each reports its wall time and the task ids it uses on one host per
// observation (the host's pid namespace: the processes it starts, and the
// threads of a Go program it starts, native's five or so). Goals (issue 12): the agent
// within 1.5x of the floor and at least 5x faster than the old probes.
// Run it with -benchtime=1x (each iteration scans four times).
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
	bin := agentbin.Build(b)
	floorBin := agentbin.BuildProgram(b, "./test/nativefloor")
	floorData, err := os.ReadFile(floorBin)
	if err != nil {
		b.Fatal(err)
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
		if err := os.WriteFile(filepath.Join(h.Root, "usr/local/bin/nativefloor"), floorData, 0o755); err != nil {
			b.Fatalf("copy nativefloor to %s: %v", h.Name, err)
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
	agents := newFleetAgents(bin)
	defer agents.Close()

	var req scanRequest
	for _, r := range rs {
		switch r.Kind {
		case "file":
			req.Files = append(req.Files, r.Name)
		case "package":
			req.Packages = append(req.Packages, r.Name)
		case "service":
			req.Units = append(req.Units, r.Name+".service")
		}
	}
	reqJSON, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	floorScript := "stat -c '%a %u %g %U %G %F' -- " + strings.Join(req.Files, " ") + " 2>/dev/null; sha256sum -- " + strings.Join(req.Files, " ") +
		" 2>/dev/null; dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\\n' -- " + strings.Join(req.Packages, " ") +
		"; systemctl is-active -- " + strings.Join(req.Units, " ") + " 2>/dev/null; true"
	// perHost runs fn on every host, par at once, each with its pooled
	// connection.
	perHost := func(fn func(ctx context.Context, t *ssh.Transport, h *hosts.Host) error) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			errs := ssh.ForEach(ctx, par, fleet, func(ctx context.Context, h *hosts.Host) error {
				t, err := pool.Get(ctx, h.Name, ssh.Config{Address: h.Address})
				if err != nil {
					return err
				}
				if err := fn(ctx, t, h); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
				return nil
			})
			return time.Since(start), errors.Join(errs...)
		}
	}
	// oneCall runs script in one SSH session per host and wants output.
	oneCall := func(script string, stdin []byte) func() (time.Duration, error) {
		return perHost(func(ctx context.Context, t *ssh.Transport, h *hosts.Host) error {
			res, err := t.Run(ctx, script, stdin)
			if err == nil && (res.Exit != 0 || len(res.Stdout) == 0) {
				err = fmt.Errorf("exit %d, %d bytes out: %s", res.Exit, len(res.Stdout), res.Stderr)
			}
			return err
		})
	}
	oldProbes := perHost(func(ctx context.Context, t *ssh.Transport, h *hosts.Host) error {
		drifted, unknown, err := oldScanHost(ctx, t, rs)
		if err == nil && (drifted != m.Drifted() || len(unknown) != m.Services) {
			err = fmt.Errorf("old probes found %d drifted and %d unknown, want %d and %d", drifted, len(unknown), m.Drifted(), m.Services)
		}
		return err
	})
	agentScan := func() (time.Duration, error) {
		res, err := scan(ctx, pool, fleet, rs, par, agents.via)
		if err == nil {
			err = res.check(fleet, m)
		}
		return res.Wall, err
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
	if _, err := oneCall("echo ready", nil)(); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	type measure struct {
		name  string
		run   func() (time.Duration, error)
		wall  time.Duration
		procs int
	}
	measureOnce := func(v *measure) {
		before := lastPid()
		wall, err := v.run()
		if err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		// The counter's read starts two processes (a shell and cat).
		v.wall += wall
		v.procs += lastPid() - before - 2
	}
	first := &measure{name: "agent, first contact", run: agentScan}
	vs := []*measure{
		{name: "agent", run: agentScan},
		{name: "floor", run: oneCall(floorScript, nil)},
		{name: "native", run: oneCall("/usr/local/bin/nativefloor scan", reqJSON)},
		{name: "oldprobes", run: oldProbes},
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i == 0 {
			measureOnce(first)
		}
		for _, v := range vs {
			measureOnce(v)
		}
	}
	b.StopTimer()
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	b.ReportMetric(float64(len(fleet)), "hosts")
	b.ReportMetric(float64(len(rs)), "resources/host")
	b.ReportMetric(first.wall.Seconds(), "agent-first-contact-s")
	b.ReportMetric(float64(first.procs), "agent-first-contact-procs/host")
	for _, v := range vs {
		b.ReportMetric(v.wall.Seconds()/n, v.name+"-s")
		b.ReportMetric(float64(v.procs)/n, v.name+"-procs/host")
	}
	agentS, floorS, nativeS, oldS := vs[0].wall.Seconds(), vs[1].wall.Seconds(), vs[2].wall.Seconds(), vs[3].wall.Seconds()
	b.ReportMetric(agentS/floorS, "x-agent/floor")
	b.ReportMetric(agentS/nativeS, "x-agent/native")
	b.ReportMetric(oldS/agentS, "x-oldprobes/agent")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	b.Logf("%d hosts x %d resources: agent %.2fs (%.0f procs/host), floor %.2fs (%.0f), native %.2fs (%.0f), old probes %.2fs (%.0f); "+
		"agent/floor %.2fx, old probes/agent %.1fx; first contact %.2fs, binary %.1f MiB",
		len(fleet), len(rs), agentS/n, float64(vs[0].procs)/n, floorS/n, float64(vs[1].procs)/n, nativeS/n, float64(vs[2].procs)/n,
		oldS/n, float64(vs[3].procs)/n, agentS/floorS, oldS/agentS, first.wall.Seconds(), float64(fi.Size())/(1<<20))
}

// scanRequest is test/nativefloor's scan request.
type scanRequest struct {
	Files    []string `json:"files"`
	Packages []string `json:"packages"`
	Units    []string `json:"units"`
}
