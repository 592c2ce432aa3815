package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/test/syncbuf"
)

// Sizes of BenchmarkClusterProcesses.
const (
	benchEnvs  = 1000
	benchKills = 20
	// benchTTL is the replicas' lease: the default of the cluster: section.
	benchTTL = 10 * time.Second
	// etcdQuota is etcd's default storage quota (--quota-backend-bytes).
	etcdQuota = 2 << 30
)

// BenchmarkClusterProcesses runs three replicas (the built binary, three
// processes) on a real etcd with 1,000 environments, each one local host
// (a folder of the sandbox) with one small file, all in one local folder
// source. It reports:
//
//   - settle_s: from the replicas' start until every environment is owned
//     by the replica rendezvous hashing gives it to; converge_s until every
//     host holds its file, against single_converge_s, one daemon without
//     cluster (bbolt) bringing the same 1,000 environments to their files,
//     measured first in the same run;
//   - rss_replica_MB (mean, max) of the three idle replicas, against
//     rss_single_MB, that idle single daemon;
//   - etcd requests (every gRPC call etcd handled, counted from its
//     metrics, less the idle rate and the benchmark's own reads) per pass
//     per environment: a pass that changes the environment's file, and a
//     pass over a revision that changes nothing of it (another file of the
//     source changed); and the idle rate of the three replicas;
//   - etcd's database size and the part in use with 1,000 environments,
//     the mean size of a stored run, and the history the retention allows
//     (100 runs of that size per environment) against the 2 GiB quota;
//   - failover over 20 kills: SIGKILL of the owner of one environment,
//     whose file then changes in the source; takeover_s until another
//     replica holds its ownership key (seen by a watch), failover_s until
//     the new owner's first write to its host (the begin line of the
//     host's write record, host clock), p50 and p99, against the lease
//     TTL; a new replica then replaces the dead one (join_settle_s until
//     ownership settles again).
//
// It takes about half an hour on two cores:
//
//	go test -run '^$' -bench ClusterProcesses -benchtime 1x -timeout 60m ./cmd/driftless/
func BenchmarkClusterProcesses(b *testing.B) {
	bin := buildBinary(b)
	for range b.N {
		benchClusterProcesses(b, bin)
	}
}

func benchClusterProcesses(b *testing.B, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 58*time.Minute)
	defer cancel()
	g := newClusterRig(b, ctx, bin, benchTTL, "1h")
	envs := make([]string, benchEnvs)
	for i := range envs {
		envs[i] = fmt.Sprintf("b%04d", i)
		g.writeEnv(envs[i], clusterEnv(envs[i], "v1"))
	}
	// converged waits until every environment's host in root holds content.
	converged := func(root, content string, limit time.Duration) time.Duration {
		b.Helper()
		start := time.Now()
		if err := waitFor(ctx, start.Add(limit), func() bool {
			for _, e := range envs {
				if data, _ := os.ReadFile(filepath.Join(root, e+"-h", "etc/app.conf")); string(data) != content {
					return false
				}
			}
			return true
		}); err != nil {
			b.Fatalf("hosts not at %q within %v: %v", content, limit, err)
		}
		return time.Since(start)
	}

	// The floor: one daemon, no cluster, the same environments.
	single := startSingle(b, ctx, bin, g.repo, filepath.Join(g.dir, "single"))
	t0 := time.Now()
	converged(filepath.Join(g.dir, "single", "root"), "v1", 10*time.Minute)
	singleConverge := time.Since(t0)
	time.Sleep(5 * time.Second)
	rssSingle := rssMB(b, single.Process.Pid)
	_ = single.Process.Signal(syscall.SIGTERM)
	_ = single.Wait()
	b.ReportMetric(singleConverge.Seconds(), "single_converge_s")
	b.ReportMetric(rssSingle, "rss_single_MB")
	b.Logf("single daemon: converged in %v, idle RSS %.1f MB", singleConverge.Round(time.Millisecond), rssSingle)

	// Three replicas start together.
	names := []string{"r1", "r2", "r3"}
	t0 = time.Now()
	for _, n := range names {
		g.start(n)
	}
	if err := waitFor(ctx, time.Now().Add(5*time.Minute), func() bool { return g.settled(envs) }); err != nil {
		b.Fatalf("ownership did not settle: %v", err)
	}
	settle := time.Since(t0)
	converged(g.root, "v1", 10*time.Minute)
	b.ReportMetric(settle.Seconds(), "settle_s")
	b.ReportMetric(time.Since(t0).Seconds(), "converge_s")
	time.Sleep(5 * time.Second)
	var rss []float64
	for _, n := range names {
		rss = append(rss, rssMB(b, g.pid(n)))
	}
	mean := (rss[0] + rss[1] + rss[2]) / 3
	b.ReportMetric(mean, "rss_replica_mean_MB")
	b.ReportMetric(slices.Max(rss), "rss_replica_max_MB")
	b.ReportMetric(mean/rssSingle, "rss_replica/single")
	b.ReportMetric(3*mean/rssSingle, "rss_3_replicas/single")
	b.Logf("three replicas: settled in %v, converged in %v, idle RSS %.1f MB", settle.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), rss)

	// etcd requests: the idle rate, then one pass of every environment.
	m := &etcdMeter{b: b, g: g}
	const idle = 20 * time.Second
	m.mark()
	time.Sleep(idle)
	idleReqs, _ := m.since()
	idleRate := idleReqs / idle.Seconds()
	b.ReportMetric(idleRate, "etcd_idle_req/s")
	b.Logf("idle: %.2f etcd requests/s", idleRate)
	pass := func(change func()) (float64, map[string]float64) {
		before := m.runSeqs()
		m.mark()
		start := time.Now()
		change()
		if err := waitFor(ctx, time.Now().Add(10*time.Minute), m.ranSince(before, envs)); err != nil {
			b.Fatalf("not every environment recorded a pass: %v", err)
		}
		// The pass's last writes (the record) follow its run.
		time.Sleep(2 * time.Second)
		reqs, by := m.since()
		runs := 0
		for e, n := range m.runSeqs() {
			runs += int(n - before[e])
		}
		b.Logf("pass: %d runs in %v, %.0f etcd requests (idle rate removed): %v", runs, time.Since(start).Round(time.Millisecond),
			reqs-idleRate*time.Since(start).Seconds(), by)
		return (reqs - idleRate*time.Since(start).Seconds()) / float64(runs), by
	}
	perChange, _ := pass(func() {
		for _, e := range envs {
			g.writeEnv(e, clusterEnv(e, "v2"))
		}
	})
	converged(g.root, "v2", time.Minute)
	perNoop, _ := pass(func() {
		if err := os.WriteFile(filepath.Join(g.repo, "README"), []byte("a change outside the environments\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(perChange, "etcd_req/change_pass/env")
	b.ReportMetric(perNoop, "etcd_req/noop_pass/env")
	b.Logf("etcd requests per pass per environment: %.2f (change), %.2f (no change)", perChange, perNoop)

	// Storage: what etcd holds now, and what the retention allows.
	reportStorage(b, ctx, g, len(envs))

	// Failover: SIGKILL the owner of one environment, change it, and wait
	// for another replica to take it and write its host.
	var takeovers, failovers, joins []time.Duration
	next := 4
	for i := range benchKills {
		target := envs[(i*337)%len(envs)]
		host := target + "-h"
		victim := g.owners()[target]
		if victim == "" {
			b.Fatalf("kill %d: %s has no owner", i+1, target)
		}
		wctx, wcancel := context.WithCancel(ctx)
		watch := g.cli.Watch(wctx, "/driftless/owners/"+target)
		killAt := time.Now()
		g.kill(victim)
		g.writeEnv(target, clusterEnv(target, fmt.Sprintf("k%d", i+1)))
		took := time.Duration(0)
		for resp := range watch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) != victim && took == 0 {
					took = time.Since(killAt)
				}
			}
			if took != 0 {
				break
			}
		}
		wcancel()
		if took == 0 {
			b.Fatalf("kill %d: the watch of %s ended without a new owner", i+1, target)
		}
		var first time.Duration
		if err := waitFor(ctx, time.Now().Add(2*time.Minute), func() bool {
			for _, ev := range g.record(host, target) {
				if ev.Begin && ev.Replica != victim && ev.Time.After(killAt) {
					first = ev.Time.Sub(killAt)
					return true
				}
			}
			return false
		}); err != nil {
			b.Fatalf("kill %d: no write of %s by a new owner after the kill: %v", i+1, host, err)
		}
		takeovers, failovers = append(takeovers, took), append(failovers, first)
		if err := waitFor(ctx, time.Now().Add(time.Minute), func() bool { return g.hostFile(host, "/etc/app.conf") == fmt.Sprintf("k%d", i+1) }); err != nil {
			b.Fatalf("kill %d: %s not at its new content: %v", i+1, host, err)
		}
		// A new replica replaces the dead one.
		joinAt := time.Now()
		g.start(fmt.Sprintf("r%d", next))
		next++
		if err := waitFor(ctx, time.Now().Add(5*time.Minute), func() bool { return g.settled(envs) }); err != nil {
			b.Fatalf("kill %d: ownership did not settle with the new replica: %v", i+1, err)
		}
		joins = append(joins, time.Since(joinAt))
		b.Logf("kill %d: %s (owned by %s) taken over after %v, its host written after %v; the new replica settled in %v",
			i+1, target, victim, took.Round(time.Millisecond), first.Round(time.Millisecond), joins[len(joins)-1].Round(time.Millisecond))
		// The next kill starts with every environment through this revision.
		q := time.Now()
		m.quiesce(ctx, target)
		b.Logf("kill %d: every environment through the revision %v later", i+1, time.Since(q).Round(time.Millisecond))
	}
	// pct is the nearest-rank percentile p of d.
	pct := func(d []time.Duration, p int) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[(len(s)*p+99)/100-1].Seconds()
	}
	b.ReportMetric(benchTTL.Seconds(), "lease_ttl_s")
	b.ReportMetric(pct(takeovers, 50), "takeover_p50_s")
	b.ReportMetric(pct(takeovers, 99), "takeover_p99_s")
	b.ReportMetric(pct(failovers, 50), "failover_p50_s")
	b.ReportMetric(pct(failovers, 99), "failover_p99_s")
	b.ReportMetric(pct(failovers, 50)/benchTTL.Seconds(), "failover_p50/ttl")
	b.ReportMetric(pct(failovers, 99)/benchTTL.Seconds(), "failover_p99/ttl")
	b.ReportMetric(pct(joins, 50), "join_settle_p50_s")
	var after []float64
	for _, n := range g.replicas() {
		after = append(after, rssMB(b, g.pid(n)))
	}
	b.ReportMetric(slices.Max(after), "rss_replica_max_after_kills_MB")
	// Leases lost by live replicas (a session ended) would show missed
	// renewals under this load.
	lost := 0
	for _, n := range g.replicas() {
		g.mu.Lock()
		lost += strings.Count(g.live[n].logs.String(), "cluster session ended")
		g.mu.Unlock()
	}
	b.ReportMetric(float64(lost), "sessions_lost")
}

// startSingle runs one daemon without cluster on the source repo, its
// state and sandbox under dir; it is stopped when the benchmark ends.
func startSingle(b *testing.B, ctx context.Context, bin, repo, dir string) *exec.Cmd {
	b.Helper()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o750); err != nil {
		b.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\ndrift_interval: 1h\nsources:\n  - name: repo\n    local: {path: %s, interval: 1s}\n", freeAddr(b), state, repo)
	cfgPath := filepath.Join(dir, "driftless.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.CommandContext(ctx, bin, "serve", "-config", cfgPath, "-sandbox-root", filepath.Join(dir, "root"))
	cmd.Stderr = logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if b.Failed() {
			b.Logf("single daemon logs (last 8 KiB):\n%s", tail(logs.String(), 8<<10))
		}
	})
	return cmd
}

// rssMB reads a process's resident set (VmRSS) in MB.
func rssMB(b *testing.B, pid int) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS of %d: %v", pid, err)
			}
			return kb * 1024 / 1e6
		}
	}
	b.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// etcdMeter counts the requests etcd handled since a mark, less the
// benchmark's own reads.
type etcdMeter struct {
	b    *testing.B
	g    *clusterRig
	at   map[string]float64
	own  float64
	from time.Time
}

func (m *etcdMeter) handled() map[string]float64 {
	h, err := m.g.srv.Handled()
	if err != nil {
		m.b.Fatal(err)
	}
	return h
}

func (m *etcdMeter) mark() { m.at, m.own, m.from = m.handled(), 0, time.Now() }

// since returns the requests since the mark (less the meter's own) and
// their split by method.
func (m *etcdMeter) since() (float64, map[string]float64) {
	now := m.handled()
	by := map[string]float64{}
	total := 0.0
	for k, v := range now {
		if d := v - m.at[k]; d > 0 {
			by[k] = d
			total += d
		}
	}
	return total - m.own, by
}

// ranSince tells whether every environment of envs recorded a run since
// runSeqs gave before.
func (m *etcdMeter) ranSince(before map[string]uint64, envs []string) func() bool {
	return func() bool {
		now := m.runSeqs()
		for _, e := range envs {
			if now[e] <= before[e] {
				return false
			}
		}
		return true
	}
}

// runSeqs reads the id of each environment's newest run (one request).
func (m *etcdMeter) runSeqs() map[string]uint64 {
	m.own++
	resp, err := m.g.cli.Get(m.g.ctx, "/driftless/runseq/", clientv3.WithPrefix())
	if err != nil {
		m.b.Fatal(err)
	}
	out := map[string]uint64{}
	for _, kv := range resp.Kvs {
		n, _ := strconv.ParseUint(string(kv.Value), 10, 64)
		out[strings.TrimPrefix(string(kv.Key), "/driftless/runseq/")] = n
	}
	return out
}

// quiesce waits until every environment's record applied the revision
// env's record applied (the newest), so that the next kill starts from a
// cluster at rest.
func (m *etcdMeter) quiesce(ctx context.Context, env string) {
	records := func() map[string]store.EnvRecord {
		resp, err := m.g.cli.Get(ctx, "/driftless/env/", clientv3.WithPrefix())
		if err != nil {
			return nil
		}
		out := map[string]store.EnvRecord{}
		for _, kv := range resp.Kvs {
			var rec store.EnvRecord
			if json.Unmarshal(kv.Value, &rec) == nil {
				out[rec.Name] = rec
			}
		}
		return out
	}
	if err := waitFor(ctx, time.Now().Add(5*time.Minute), func() bool {
		recs := records()
		want := recs[env].Applied.Commit
		if want == "" {
			return false
		}
		for _, rec := range recs {
			if rec.Applied.Commit != want {
				return false
			}
		}
		return true
	}); err != nil {
		m.b.Fatalf("the environments did not all pass the revision of %s: %v", env, err)
	}
}

// reportStorage reports etcd's database size and what the store keeps,
// and the history the retention allows against the default quota.
func reportStorage(b *testing.B, ctx context.Context, g *clusterRig, envs int) {
	b.Helper()
	st, err := g.cli.Status(ctx, g.srv.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	size := func(prefix string) (n int, bytes int) {
		resp, err := g.cli.Get(ctx, "/driftless/"+prefix, clientv3.WithPrefix())
		if err != nil {
			b.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			bytes += len(kv.Key) + len(kv.Value)
		}
		return len(resp.Kvs), bytes
	}
	all, allBytes := size("")
	runs, runBytes := size("hist/")
	run := float64(runBytes) / float64(runs)
	full := float64(allBytes-runBytes) + float64(envs*store.EtcdHistoryRetention)*run
	b.ReportMetric(float64(all), "etcd_keys")
	b.ReportMetric(float64(allBytes)/1e6, "etcd_payload_MB")
	b.ReportMetric(float64(st.DbSize)/1e6, "etcd_db_MB")
	b.ReportMetric(float64(st.DbSizeInUse)/1e6, "etcd_db_in_use_MB")
	b.ReportMetric(run, "run_B")
	b.ReportMetric(full/1e6, "payload_at_full_retention_MB")
	b.ReportMetric(full/etcdQuota, "payload_at_full_retention/quota")
	b.Logf("etcd: %d keys, %.2f MB payload, db %.1f MB (%.1f MB in use); runs of %.0f B; at full retention %.1f MB, %.3f of the quota",
		all, float64(allBytes)/1e6, float64(st.DbSize)/1e6, float64(st.DbSizeInUse)/1e6, run, full/1e6, full/etcdQuota)
}
