package agent_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
)

// BenchmarkObserve200FilesLocal observes 200 files on the local
// transport natively (the agent's code in the daemon's process) and with
// the shell probes, against the floor measured in the same loop: a Go
// loop that stats, reads and hashes the same files. Goal: native within
// 2x of the floor.
func BenchmarkObserve200FilesLocal(b *testing.B) {
	root := b.TempDir()
	var rs []config.Resource
	var paths []string
	for i := range 200 {
		name := fmt.Sprintf("/f%03d", i)
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(strings.Repeat("line of config\n", 20)), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
		rs = append(rs, config.Resource{Kind: "file", Name: name, Spec: &targets.FileSpec{Content: "x"}})
	}
	ctx := context.Background()
	drivers := targets.Drivers()
	native, shell := targets.NewLocal(root), &countingLocal{Transport: targets.NewLocal(root)}
	var tNative, tShell, tFloor time.Duration
	for b.Loop() {
		start := time.Now()
		if st, err := targets.Observe(ctx, native, drivers, rs); err != nil || len(st) != len(rs) {
			b.Fatal(err)
		}
		tNative += time.Since(start)
		start = time.Now()
		for _, p := range paths {
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				b.Fatal(err)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			_ = sha256.Sum256(data)
		}
		tFloor += time.Since(start)
		start = time.Now()
		if st, err := targets.Observe(ctx, shell, drivers, rs); err != nil || len(st) != len(rs) {
			b.Fatal(err)
		}
		tShell += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(ms(tNative)/n, "native-ms")
	b.ReportMetric(ms(tFloor)/n, "floor-ms")
	b.ReportMetric(ms(tShell)/n, "shell-ms")
	b.ReportMetric(float64(tNative)/float64(tFloor), "x-native/floor")
	b.ReportMetric(float64(tShell)/float64(tNative), "x-shell/native")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkObserve200OnHost observes 200 resources (180 files, 20
// packages) on a real kind-1 host over SSH, side by side in one loop: the
// agent kept across passes, the shell probes of today, the floor (one SSH
// call running stat and sha256sum over the files and one dpkg-query over
// the packages), and the agent binary started afresh for one observation
// (a small native program in one call). It counts the processes each
// starts on the host (the host's pid namespace), and reports the first
// contact: copying the binary to the host.
func BenchmarkObserve200OnHost(b *testing.B) {
	bin := agentbin.Build(b)
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("obs200")
	tr := dialHost(b, lab, h, "root")
	ctx := context.Background()
	h.MustExec(b, "mkdir -p /srv/bench && for i in $(seq 0 179); do seq 40 > /srv/bench/f$i; done")
	pkgs := strings.Fields(h.MustExec(b, "dpkg-query -W -f='${Package}\\n' | head -n 20"))
	var rs []config.Resource
	var files []string
	for i := range 180 {
		p := fmt.Sprintf("/srv/bench/f%d", i)
		files = append(files, p)
		rs = append(rs, config.Resource{Kind: "file", Name: p, Spec: &targets.FileSpec{Content: "x"}})
	}
	for _, p := range pkgs {
		rs = append(rs, config.Resource{Kind: "package", Name: p, Spec: &targets.PackageSpec{}})
	}
	if len(rs) != 200 {
		b.Fatalf("%d resources, want 200", len(rs))
	}
	drivers := targets.Drivers()
	d := &agent.Deployer{Own: bin}
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	// First contact: the copy and the first start.
	rem := agent.NewRemote(d)
	b.Cleanup(func() { rem.Close() })
	at := &agent.Transport{Starter: tr, Agent: rem}
	start := time.Now()
	if _, err := targets.Observe(ctx, at, drivers, rs); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	floorScript := "stat -c '%a %u %g %U %G %F' -- " + strings.Join(files, " ") + " && sha256sum -- " + strings.Join(files, " ") +
		" && dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\\n' -- " + strings.Join(pkgs, " ")
	lastPid := func() int {
		var pid int
		if _, err := fmt.Sscan(h.MustExec(b, "cat /proc/sys/kernel/ns_last_pid"), &pid); err != nil {
			b.Fatal(err)
		}
		return pid
	}
	type variant struct {
		name  string
		run   func() error
		total time.Duration
		procs int
	}
	observe := func(t targets.Transport) func() error {
		return func() error {
			st, err := targets.Observe(ctx, t, drivers, rs)
			if err == nil && len(st) != len(rs) {
				err = fmt.Errorf("%d states", len(st))
			}
			return err
		}
	}
	vs := []*variant{
		{name: "agent", run: observe(at)},
		{name: "floor", run: func() error {
			res, err := tr.Run(ctx, floorScript, nil)
			if err == nil && res.Exit != 0 {
				err = fmt.Errorf("floor exit %d: %s", res.Exit, res.Stderr)
			}
			return err
		}},
		{name: "oneshot", run: func() error {
			r := agent.NewRemote(d)
			defer r.Close()
			return observe(&agent.Transport{Starter: tr, Agent: r})()
		}},
		{name: "shell", run: observe(tr)},
	}
	for b.Loop() {
		for _, v := range vs {
			before := lastPid()
			start := time.Now()
			if err := v.run(); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			v.total += time.Since(start)
			// The counter's own read (an SSH session's shell and cat)
			// starts two processes.
			v.procs += lastPid() - before - 2
		}
	}
	n := float64(b.N)
	for _, v := range vs {
		b.ReportMetric(ms(v.total)/n, v.name+"-ms")
		b.ReportMetric(float64(v.procs)/n, v.name+"-procs")
	}
	b.ReportMetric(float64(vs[0].total)/float64(vs[1].total), "x-agent/floor")
	b.ReportMetric(float64(vs[3].total)/float64(vs[0].total), "x-shell/agent")
	b.ReportMetric(ms(first), "first-contact-ms")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
}
