package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// TestClusterEtcdRestart stops etcd while three replicas (separate
// processes) roll a revision out over 20 environments, with hosts in the
// middle of their batch, and starts it again on the same data, as many
// times as DRIFTLESS_CLUSTER_ETCD_RESTARTS says (SIGTERM, then SIGKILL,
// in turn). Meanwhile every replica answers /readyz 503; after, each is
// ready again, ownership settles and every host ends on the revision as a
// whole. Nothing is lost: the runs recorded before the outage are all
// still in the shared history, every rollout that wrote a host (a batch
// the host's write record shows) has its run there and none has it
// twice, the newest run of each environment that changed something is the revision's success,
// and the record names it as applied. The hosts' write records show no
// two replicas writing a host at once and no token going down.
func TestClusterEtcdRestart(t *testing.T) {
	rounds := envInt(t, "DRIFTLESS_CLUSTER_ETCD_RESTARTS", 1) // each takes about 15 s
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(rounds)*time.Minute)
	defer cancel()
	const ttl = 2 * time.Second
	g := newClusterRig(t, ctx, bin, ttl, "1h")
	envs := killEnvs(20)
	write := func(version string) { g.writeKillEnvs(envs, version) }
	converged := func(version string) func() bool { return g.killConverged(envs, version) }
	write("v1")
	replicas := []*rigReplica{g.start("r1"), g.start("r2"), g.start("r3")}
	if err := waitFor(ctx, time.Now().Add(2*time.Minute), converged("v1")); err != nil {
		t.Fatalf("hosts did not converge on v1: %v", err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
		t.Fatalf("ownership did not settle: %v", g.owners())
	}
	st := g.store()
	for round := 1; round <= rounds; round++ {
		version := fmt.Sprintf("v%d", round+1)
		// Every run of the previous revision is recorded before the next
		// is written (each environment's newest run is its success).
		before := map[string][]uint64{}
		for _, e := range envs {
			var runs []store.Run
			if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
				runs, _ = st.History(e, 0)
				return len(runs) > 0 && runs[0].Result == status.ResultSuccess
			}); err != nil {
				t.Fatalf("round %d: the newest run of %s is not a success: %+v", round, e, runs)
			}
			for _, r := range runs {
				before[e] = append(before[e], r.ID)
			}
		}
		wrote := time.Now()
		write(version)
		host := envs[0] + "-h"
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
			return g.hostFile(host, "/etc/a.conf") == version && g.hostFile(host, "/etc/b.conf") != version
		}); err != nil {
			t.Fatalf("round %d: %s never seen in the middle of its batch: %v", round, host, err)
		}
		stopped := time.Now()
		how := "SIGTERM"
		if round%2 == 0 {
			how = "SIGKILL"
			g.srv.Kill()
		} else {
			g.srv.Stop()
		}
		for _, r := range replicas {
			if err := waitFor(ctx, time.Now().Add(ttl+5*time.Second), func() bool { return !httpOK("http://" + r.addr + "/readyz") }); err != nil {
				t.Fatalf("round %d: replica %s still ready %v after etcd stopped", round, r.name, time.Since(stopped))
			}
		}
		down := time.Since(stopped)
		// Past the lease, with etcd away: nothing may hold an environment.
		time.Sleep(ttl)
		g.srv.Restart()
		restarted := time.Now()
		for _, r := range replicas {
			if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return httpOK("http://" + r.addr + "/readyz") }); err != nil {
				t.Fatalf("round %d: replica %s not ready again after etcd restarted", round, r.name)
			}
		}
		ready := time.Since(restarted)
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
			t.Fatalf("round %d: ownership did not settle after etcd restarted: %v", round, g.owners())
		}
		settled := time.Since(restarted)
		if err := waitFor(ctx, time.Now().Add(90*time.Second), converged(version)); err != nil {
			t.Fatalf("round %d: hosts did not all end on %s after etcd restarted: %v", round, version, err)
		}
		recovered := 0
		for _, e := range envs {
			// The newest run that did something is the revision's
			// success, recorded once the pass ends (a recovery's retry
			// may roll the revision out before the source's pass of it,
			// which then records a no-op).
			var runs []store.Run
			if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
				runs, _ = st.History(e, 0)
				i := slices.IndexFunc(runs, func(r store.Run) bool { return r.Result != status.ResultNoop })
				return i >= 0 && runs[i].Result == status.ResultSuccess && runs[i].Start.After(wrote)
			}); err != nil {
				t.Fatalf("round %d: %s: the newest run is not a success of %s: %+v", round, e, version, runs)
			}
			var ids []uint64
			for _, r := range runs {
				ids = append(ids, r.ID)
			}
			for _, id := range before[e] {
				if !slices.Contains(ids, id) {
					t.Fatalf("round %d: %s: run %d, recorded before etcd stopped, is gone: %v", round, e, id, ids)
				}
			}
			// No rollout is recorded twice (its completion tried again
			// after etcd applied it, its answer lost in the outage).
			for i, r := range runs {
				if slices.ContainsFunc(runs[i+1:], func(o store.Run) bool { return o.Start.Equal(r.Start) && o.Trigger == r.Trigger }) {
					t.Fatalf("round %d: %s: run %d recorded twice: %+v", round, e, r.ID, runs)
				}
			}
			ev := g.checkRecord(e+"-h", e)
			// Every rollout that wrote the host has its run: its own (a
			// success, or interrupted then rolled back), or the recovery's
			// that rolled it back for it.
			batches, recorded := 0, 0
			for _, x := range ev {
				if x.Begin && x.Op == "apply" && x.Time.After(wrote) {
					batches++
				}
			}
			for _, r := range runs {
				if r.Start.After(wrote) && r.Result != status.ResultNoop {
					recorded++
				}
			}
			if recorded < batches {
				t.Fatalf("round %d: %s: %d rollout(s) wrote the host since %s was written, %d run(s) recorded: %+v; host record: %v",
					round, e, batches, version, recorded, runs, ev)
			}
			rec, ok, err := st.Env(e)
			if err != nil || !ok || rec.Applied.Commit != runs[0].Revision.Commit {
				t.Fatalf("round %d: %s: record %+v (%v, %v) does not say the newest run's revision is applied", round, e, rec.Applied, ok, err)
			}
			if slices.ContainsFunc(runs, func(r store.Run) bool { return r.Start.After(wrote) && r.Result == status.ResultRolledBack }) {
				recovered++
			}
		}
		// The recoveries rolled hosts back and out again: they end on the
		// revision.
		if !converged(version)() {
			t.Fatalf("round %d: hosts not all on %s once every run was recorded", round, version)
		}
		t.Logf("round %d (etcd stopped by %s): every replica not ready %v after etcd stopped; ready again %v, ownership settled %v, "+
			"every environment's newest run a success of %s and its hosts on it %v after etcd restarted (%d of %d rolled back, then out again)",
			round, how, down.Round(time.Millisecond), ready.Round(time.Millisecond), settled.Round(time.Millisecond),
			version, time.Since(restarted).Round(time.Millisecond), recovered, len(envs))
	}
}
