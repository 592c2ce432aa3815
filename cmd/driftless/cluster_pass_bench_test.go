package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkClusterChangePass is one pass that changes one file in each of
// 200 environments (DRIFTLESS_BENCH_ENVS sets how many), each one local
// host of the sandbox, in one local folder source: three replicas
// (DRIFTLESS_BENCH_REPLICAS) on a real etcd, against the floor, one daemon
// without cluster (bbolt) doing the same pass on the same environments,
// measured first in the same run. A pass runs from the source change
// until every host holds its new file (change_s); for the replicas also
// until every environment recorded its run (recorded_s). It reports the
// ratio, the etcd requests per environment, and the CPU time per
// environment of the daemons, of the processes they started (their
// children: the fence script's shells) and of etcd.
//
// With DRIFTLESS_BENCH_PROFILE=DIR, replica r1 serves pprof and its CPU
// profile of the pass's first DRIFTLESS_BENCH_PROFILE_S seconds (20) is
// written to DIR/r1.cpu.pprof.
//
//	go test -run '^$' -bench ClusterChangePass -benchtime 1x ./cmd/driftless/
func BenchmarkClusterChangePass(b *testing.B) {
	bin := buildBinary(b)
	for range b.N {
		benchClusterChangePass(b, bin)
	}
}

func benchClusterChangePass(b *testing.B, bin string) {
	n, replicas := envInt(b, "DRIFTLESS_BENCH_ENVS", 200), envInt(b, "DRIFTLESS_BENCH_REPLICAS", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := newClusterRig(b, ctx, bin, benchTTL, "1h")
	envs := make([]string, n)
	write := func(content string) {
		for _, e := range envs {
			g.writeEnv(e, clusterEnv(e, content))
		}
	}
	for i := range envs {
		envs[i] = fmt.Sprintf("p%04d", i)
	}
	write("v1")
	converged := func(root, content string) {
		b.Helper()
		if err := waitFor(ctx, time.Now().Add(10*time.Minute), func() bool {
			for _, e := range envs {
				if data, _ := os.ReadFile(filepath.Join(root, e+"-h", "etc/app.conf")); string(data) != content {
					return false
				}
			}
			return true
		}); err != nil {
			b.Fatalf("hosts not at %q: %v", content, err)
		}
	}
	perEnv := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(n) }

	// The floor: one daemon, no cluster, the same pass.
	root := filepath.Join(g.dir, "single", "root")
	single := startSingle(b, ctx, bin, g.repo, filepath.Join(g.dir, "single"))
	converged(root, "v1")
	time.Sleep(3 * time.Second) // the first pass's last writes
	cpu0 := procCPU(b, single.Process.Pid)
	t0 := time.Now()
	write("v2")
	converged(root, "v2")
	singleChange := time.Since(t0)
	time.Sleep(3 * time.Second)
	cpu1 := procCPU(b, single.Process.Pid)
	_ = single.Process.Signal(syscall.SIGTERM)
	_ = single.Wait()
	b.ReportMetric(singleChange.Seconds(), "single_change_s")
	b.ReportMetric(perEnv(cpu1.self-cpu0.self), "single_cpu_ms/env")
	b.ReportMetric(perEnv(cpu1.children-cpu0.children), "single_children_cpu_ms/env")
	b.Logf("single daemon: change pass %v; CPU %v, its children %v", singleChange.Round(time.Millisecond), cpu1.self-cpu0.self, cpu1.children-cpu0.children)

	// The replicas, the repository at v2: their first pass brings the
	// hosts to v2, the pass measured to v3.
	profile := os.Getenv("DRIFTLESS_BENCH_PROFILE")
	pprofAddr := freeAddr(b)
	names := make([]string, replicas)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i+1)
		var args []string
		if i == 0 && profile != "" {
			args = []string{"-pprof-listen", pprofAddr}
		}
		g.startWith(names[i], args)
	}
	if err := waitFor(ctx, time.Now().Add(5*time.Minute), func() bool { return g.settled(envs) }); err != nil {
		b.Fatalf("ownership did not settle: %v", err)
	}
	converged(g.root, "v2")
	m := &etcdMeter{b: b, g: g}
	before := m.runSeqs()
	time.Sleep(3 * time.Second)
	cpuOf := func() (self, children, etcd time.Duration) {
		for _, nm := range names {
			c := procCPU(b, g.pid(nm))
			self, children = self+c.self, children+c.children
		}
		return self, children, procCPU(b, g.srv.Pid()).self
	}
	self0, child0, etcd0 := cpuOf()
	m.mark()
	done := make(chan error, 1)
	if profile != "" {
		go func() {
			done <- fetchProfile(ctx, "http://"+pprofAddr+"/debug/pprof/profile?seconds="+strconv.Itoa(envInt(b, "DRIFTLESS_BENCH_PROFILE_S", 20)), filepath.Join(profile, "r1.cpu.pprof"))
		}()
	}
	t0 = time.Now()
	write("v3")
	converged(g.root, "v3")
	change := time.Since(t0)
	if err := waitFor(ctx, time.Now().Add(10*time.Minute), m.ranSince(before, envs)); err != nil {
		b.Fatalf("not every environment recorded its pass: %v", err)
	}
	recorded := time.Since(t0)
	time.Sleep(3 * time.Second)
	reqs, by := m.since()
	self1, child1, etcd1 := cpuOf()
	runs := 0
	for e, s := range m.runSeqs() {
		runs += int(s - before[e])
	}
	b.ReportMetric(change.Seconds(), "cluster_change_s")
	b.ReportMetric(recorded.Seconds(), "cluster_recorded_s")
	b.ReportMetric(change.Seconds()/singleChange.Seconds(), "change/single")
	b.ReportMetric(reqs/float64(runs), "etcd_req/run")
	b.ReportMetric(perEnv(self1-self0), "replicas_cpu_ms/env")
	b.ReportMetric(perEnv(child1-child0), "replicas_children_cpu_ms/env")
	b.ReportMetric(perEnv(etcd1-etcd0), "etcd_cpu_ms/env")
	b.Logf("%d replicas: change pass %v, every run recorded %v (%d runs); %.0f etcd requests %v; CPU: replicas %v, their children %v, etcd %v",
		replicas, change.Round(time.Millisecond), recorded.Round(time.Millisecond), runs, reqs, by, self1-self0, child1-child0, etcd1-etcd0)
	if profile != "" {
		if err := <-done; err != nil {
			b.Errorf("profile: %v", err)
		}
	}
}

// cpuTimes is a process's CPU time, its own and its waited-for
// children's.
type cpuTimes struct{ self, children time.Duration }

// procCPU reads a process's CPU times from /proc/PID/stat (utime, stime,
// cutime, cstime, in clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) cpuTimes {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	tick := func(i int) time.Duration {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat field %d: %v", pid, i, err)
		}
		return time.Duration(v) * 10 * time.Millisecond
	}
	// utime, stime, cutime and cstime are the line's fields 14 to 17.
	return cpuTimes{self: tick(11) + tick(12), children: tick(13) + tick(14)}
}

// fetchProfile saves what url answers (a pprof profile) to file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}
