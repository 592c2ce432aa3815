package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
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
// transport (the kinds' native code in the daemon's process, as the agent
// runs it on a host) against the floor measured in the same loop: a Go
// loop that stats, reads and hashes the same files. Goal: within 2x of the
// floor.
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
	local := targets.NewLocal(root)
	var tNative, tFloor time.Duration
	for b.Loop() {
		start := time.Now()
		if st, err := targets.Observe(ctx, local, drivers, rs); err != nil || len(st) != len(rs) {
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
	}
	n := float64(b.N)
	b.ReportMetric(ms(tNative)/n, "native-ms")
	b.ReportMetric(ms(tFloor)/n, "floor-ms")
	b.ReportMetric(float64(tNative)/float64(tFloor), "x-native/floor")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkObserve200OnHost observes 200 resources (180 files, 20
// packages) on a real kind-1 host over SSH, side by side in one loop: the
// agent kept across passes, the floor (one SSH call running stat and
// sha256sum over the files and one dpkg-query over the packages), and the
// agent binary started afresh for one observation. It counts the
// processes each starts on the host (the host's pid namespace), and
// reports the first contact: copying the binary to the host. The shell
// probes it once compared against are measured, as a pre-agent baseline,
// by test/scale's BenchmarkDriftScanAgent.
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
	b.ReportMetric(float64(vs[2].total)/float64(vs[0].total), "x-oneshot/agent")
	b.ReportMetric(ms(first), "first-contact-ms")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
}

// nativeCalls joins rs's applies (or, with restore, their restores in
// reverse order) into the calls the reconciler makes of a host: a run of
// consecutive file writes (kinds that are targets.Writer: file, env) is
// one WriteFiles, a run of consecutive native steps one ApplyNative.
func nativeCalls(t *agent.Transport, ds map[string]targets.Driver, rs []config.Resource, before []targets.State, restore bool) []func(context.Context) error {
	type call struct {
		writes []targets.FileWrite
		steps  []targets.Step
	}
	var calls []*call
	last := func(write bool) *call {
		if n := len(calls); n > 0 && (len(calls[n-1].writes) > 0) == write {
			return calls[n-1]
		}
		c := &call{}
		calls = append(calls, c)
		return c
	}
	for k := range rs {
		i, op := k, targets.StepApply
		if restore {
			i, op = len(rs)-1-k, targets.StepRestore
		}
		r, st := rs[i], before[i]
		if w, ok := ds[r.Kind].(targets.Writer); ok {
			fw, ok := w.Write(r, st)
			if restore {
				fw, ok = w.RestoreWrite(r, st)
			}
			if ok {
				c := last(true)
				c.writes = append(c.writes, fw)
				continue
			}
		}
		c := last(false)
		c.steps = append(c.steps, targets.Step{Op: op, Resource: r, State: st})
	}
	var fns []func(context.Context) error
	for _, c := range calls {
		fns = append(fns, func(ctx context.Context) error {
			if len(c.writes) > 0 {
				_, err := t.WriteFiles(ctx, c.writes)
				return err
			}
			_, err := t.ApplyNative(ctx, c.steps)
			return err
		})
	}
	return fns
}

// floorOp is one change of test/nativefloor's apply.
type floorOp struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	Data   []byte `json:"data,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	Target string `json:"target,omitempty"`
	Value  string `json:"value,omitempty"`
}

// BenchmarkNativeApplyBatch applies a batch of non-network resources on a
// kind-1 host through the agent, then restores it, each iteration from the
// same snapshots: 20 new folders, 50 files rewritten, 5 new env files, 20
// new links and 4 kernel parameters changed (with their sysctl.d files),
// joined into calls as the reconciler joins them (a run of file writes in
// one write request, a run of native steps in one apply request). Against
// the floor in the same loop: the same writes made by a small native
// program on the host (test/nativefloor), one SSH call for the applies
// and one for the restores. It counts the processes each starts on the
// host and checks that every restore put the host back.
func BenchmarkNativeApplyBatch(b *testing.B) {
	bin := agentbin.Build(b)
	floorBin, err := os.ReadFile(agentbin.BuildProgram(b, "./test/nativefloor"))
	if err != nil {
		b.Fatal(err)
	}
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("applybatch")
	if err := os.WriteFile(filepath.Join(h.Root, "usr/local/bin/nativefloor"), floorBin, 0o755); err != nil {
		b.Fatal(err)
	}
	tr := dialHost(b, lab, h, "root")
	rem := agent.NewRemote(&agent.Deployer{Own: bin})
	b.Cleanup(func() { rem.Close() })
	at := &agent.Transport{Starter: tr, Agent: rem}
	ctx := context.Background()
	h.MustExec(b, "mkdir -p /srv/nab /etc/sysctl.d && for i in $(seq -w 0 49); do printf 'old %s\\n' $i > /srv/nab/f$i.conf; done")
	sysctls := []string{"net.ipv4.ip_default_ttl", "net.ipv4.icmp_echo_ignore_all", "net.core.somaxconn", "net.ipv4.tcp_keepalive_time"}
	var rs []config.Resource
	var apply, restore []floorOp
	var undoLinks, undoSysctl, undoFiles, undoDirs []floorOp
	for i := range 20 {
		p := fmt.Sprintf("/srv/nab/d%02d", i)
		rs = append(rs, config.Resource{Kind: "directory", Name: p, Spec: &targets.DirectorySpec{Mode: "0750"}})
		apply = append(apply, floorOp{Op: "mkdir", Path: p, Mode: 0o750})
		undoDirs = append([]floorOp{{Op: "rmdir", Path: p}}, undoDirs...)
	}
	for i := range 50 {
		p := fmt.Sprintf("/srv/nab/f%02d.conf", i)
		content := strings.Repeat(fmt.Sprintf("new %02d option = value\n", i), 40)
		rs = append(rs, config.Resource{Kind: "file", Name: p, Spec: &targets.FileSpec{Content: content, Mode: "0644"}})
		apply = append(apply, floorOp{Op: "write", Path: p, Data: []byte(content), Mode: 0o644})
		undoFiles = append([]floorOp{{Op: "write", Path: p, Data: []byte(fmt.Sprintf("old %02d\n", i)), Mode: 0o644}}, undoFiles...)
	}
	for i := range 5 {
		p := fmt.Sprintf("/srv/nab/e%d.env", i)
		rs = append(rs, config.Resource{Kind: "env", Name: p, Spec: &targets.EnvSpec{Vars: map[string]string{"APP": "bench", "N": fmt.Sprint(i)}}})
		apply = append(apply, floorOp{Op: "write", Path: p, Data: []byte(fmt.Sprintf("APP=bench\nN=%d\n", i)), Mode: 0o644})
		undoFiles = append([]floorOp{{Op: "remove", Path: p}}, undoFiles...)
	}
	for i := range 20 {
		p := fmt.Sprintf("/srv/nab/l%02d", i)
		target := fmt.Sprintf("/srv/nab/f%02d.conf", i)
		rs = append(rs, config.Resource{Kind: "symlink", Name: p, Spec: &targets.SymlinkSpec{Target: target}})
		apply = append(apply, floorOp{Op: "symlink", Path: p, Target: target})
		undoLinks = append([]floorOp{{Op: "remove", Path: p}}, undoLinks...)
	}
	for _, name := range sysctls {
		var old int
		if _, err := fmt.Sscan(h.MustExec(b, "cat /proc/sys/"+strings.ReplaceAll(name, ".", "/")), &old); err != nil {
			b.Fatal(err)
		}
		v := fmt.Sprint(old + 1)
		if name == "net.ipv4.icmp_echo_ignore_all" {
			v = fmt.Sprint(1 - old)
		}
		proc := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
		conf := "/etc/sysctl.d/99-driftless-" + name + ".conf"
		rs = append(rs, config.Resource{Kind: "sysctl", Name: name, Spec: &targets.SysctlSpec{Value: v}})
		apply = append(apply, floorOp{Op: "sysctl", Path: proc, Value: v},
			floorOp{Op: "write", Path: conf, Data: []byte(name + " = " + v + "\n"), Mode: 0o644})
		undoSysctl = append([]floorOp{{Op: "sysctl", Path: proc, Value: fmt.Sprint(old)}, {Op: "remove", Path: conf}}, undoSysctl...)
	}
	restore = append(append(append(append(restore, undoSysctl...), undoLinks...), undoFiles...), undoDirs...)
	ds := targets.Drivers()
	changes, err := targets.PlanHost(ctx, at, ds, rs)
	if err != nil {
		b.Fatal(err)
	}
	before := make([]targets.State, len(rs))
	for i, c := range changes {
		if c.Action == targets.NoChange {
			b.Fatalf("%s: no change planned", c.ID)
		}
		before[i] = c.Before
	}
	agentCalls := append(nativeCalls(at, ds, rs, before, false), nativeCalls(at, ds, rs, before, true)...)
	applyJSON, err := json.Marshal(apply)
	if err != nil {
		b.Fatal(err)
	}
	restoreJSON, err := json.Marshal(restore)
	if err != nil {
		b.Fatal(err)
	}
	look := "cd /srv/nab && find . -printf '%p %m %l\\n' | sort && cat *.conf | sha256sum && ls /etc/sysctl.d && cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/net/ipv4/icmp_echo_ignore_all /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_keepalive_time"
	state := h.MustExec(b, look)
	lastPid := func() int {
		var pid int
		if _, err := fmt.Sscan(h.MustExec(b, "cat /proc/sys/kernel/ns_last_pid"), &pid); err != nil {
			b.Fatal(err)
		}
		return pid
	}
	floorCall := func(input []byte) func(context.Context) error {
		return func(ctx context.Context) error {
			res, err := tr.Run(ctx, "/usr/local/bin/nativefloor apply", input)
			if err == nil && res.Exit != 0 {
				err = fmt.Errorf("nativefloor exit %d: %s", res.Exit, res.Stderr)
			}
			return err
		}
	}
	type variant struct {
		name  string
		calls []func(context.Context) error
		total time.Duration
		procs int
	}
	vs := []*variant{
		{name: "agent", calls: agentCalls},
		{name: "floor", calls: []func(context.Context) error{floorCall(applyJSON), floorCall(restoreJSON)}},
	}
	// The agent's first start is not measured.
	if _, err := targets.Observe(ctx, at, ds, rs[:1]); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		for _, v := range vs {
			p := lastPid()
			start := time.Now()
			for _, call := range v.calls {
				if err := call(ctx); err != nil {
					b.Fatalf("%s: %v", v.name, err)
				}
			}
			v.total += time.Since(start)
			// The counter's own read starts two processes.
			v.procs += lastPid() - p - 2
			if now := h.MustExec(b, look); now != state {
				b.Fatalf("%s did not put the host back:\n%s\nwant\n%s", v.name, now, state)
			}
		}
	}
	n := float64(b.N)
	for _, v := range vs {
		b.ReportMetric(ms(v.total)/n, v.name+"-ms")
		b.ReportMetric(float64(v.procs)/n, v.name+"-procs")
		b.ReportMetric(float64(len(v.calls)), v.name+"-calls")
	}
	b.ReportMetric(float64(len(rs)), "resources")
	b.ReportMetric(float64(vs[0].total)/float64(vs[1].total), "x-agent/floor")
}
