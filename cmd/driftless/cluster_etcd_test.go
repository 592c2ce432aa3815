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
// processes) roll a revision out over 20 environments, one host of which
// is in the middle of its batch, and starts it again. Meanwhile every
// replica answers /readyz 503; after, each is ready again, ownership
// settles, every host ends on the revision as a whole, the runs recorded
// before the outage are all still in the shared history, and the hosts'
// write records show no two replicas writing a host at once.
func TestClusterEtcdRestart(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ttl = 2 * time.Second
	g := newClusterRig(t, ctx, bin, ttl, "1h")
	envs := make([]string, 20)
	for i := range envs {
		envs[i] = fmt.Sprintf("k%02d", i+1)
	}
	write := func(version string) {
		for _, e := range envs {
			g.writeEnv(e, killEnv(e, version))
		}
	}
	converged := func(version string) func() bool {
		return func() bool {
			for _, e := range envs {
				if g.hostFile(e+"-h", "/etc/a.conf") != version || g.hostFile(e+"-h", "/etc/b.conf") != version {
					return false
				}
			}
			return true
		}
	}
	write("v1")
	replicas := []*rigReplica{g.start("r1"), g.start("r2"), g.start("r3")}
	if err := waitFor(ctx, time.Now().Add(2*time.Minute), converged("v1")); err != nil {
		t.Fatalf("hosts did not converge on v1: %v", err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
		t.Fatalf("ownership did not settle: %v", g.owners())
	}
	st := g.store()
	before := map[string][]uint64{}
	for _, e := range envs {
		runs, err := st.History(e, 0)
		if err != nil || len(runs) == 0 {
			t.Fatalf("history of %s: %v, %v", e, runs, err)
		}
		for _, r := range runs {
			before[e] = append(before[e], r.ID)
		}
	}
	wrote := time.Now()
	write("v2")
	host := envs[0] + "-h"
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		return g.hostFile(host, "/etc/a.conf") == "v2" && g.hostFile(host, "/etc/b.conf") != "v2"
	}); err != nil {
		t.Fatalf("%s never seen in the middle of its batch: %v", host, err)
	}
	stopped := time.Now()
	g.srv.Stop()
	for _, r := range replicas {
		if err := waitFor(ctx, time.Now().Add(ttl+5*time.Second), func() bool { return !httpOK("http://" + r.addr + "/readyz") }); err != nil {
			t.Fatalf("replica %s still ready %v after etcd stopped", r.name, time.Since(stopped))
		}
	}
	t.Logf("every replica not ready %v after etcd stopped", time.Since(stopped).Round(time.Millisecond))
	// Past the lease, with etcd away: nothing may hold an environment.
	time.Sleep(ttl)
	g.srv.Restart()
	restarted := time.Now()
	for _, r := range replicas {
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return httpOK("http://" + r.addr + "/readyz") }); err != nil {
			t.Fatalf("replica %s not ready again after etcd restarted", r.name)
		}
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
		t.Fatalf("ownership did not settle after etcd restarted: %v", g.owners())
	}
	t.Logf("ownership settled %v after etcd restarted", time.Since(restarted).Round(time.Millisecond))
	if err := waitFor(ctx, time.Now().Add(90*time.Second), converged("v2")); err != nil {
		t.Fatalf("hosts did not all end on v2 after etcd restarted: %v", err)
	}
	t.Logf("every host on v2 %v after etcd restarted", time.Since(restarted).Round(time.Millisecond))
	for _, e := range envs {
		g.checkRecord(e+"-h", e)
		// The run of the rollout is recorded once the pass ends.
		var runs []store.Run
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
			runs, _ = st.History(e, 0)
			return len(runs) > 0 && runs[0].Result == status.ResultSuccess && runs[0].Start.After(wrote)
		}); err != nil {
			t.Fatalf("%s: the newest run is not a success of v2: %+v", e, runs)
		}
		var ids []uint64
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		for _, id := range before[e] {
			if !slices.Contains(ids, id) {
				t.Fatalf("%s: run %d, recorded before etcd stopped, is gone: %v", e, id, ids)
			}
		}
		rec, ok, err := st.Env(e)
		if err != nil || !ok || rec.Applied.Commit != runs[0].Revision.Commit {
			t.Fatalf("%s: record %+v (%v, %v) does not say the newest run's revision is applied", e, rec.Applied, ok, err)
		}
	}
}
