package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/test/hostrecord"
)

// killEnvs names n environments of killEnv ("k01"...).
func killEnvs(n int) []string {
	envs := make([]string, n)
	for i := range envs {
		envs[i] = fmt.Sprintf("k%02d", i+1)
	}
	return envs
}

// writeKillEnvs declares every environment of envs at version.
func (g *clusterRig) writeKillEnvs(envs []string, version string) {
	for _, e := range envs {
		g.writeEnv(e, killEnv(e, version))
	}
}

// killConverged tells whether every host of envs holds version in both
// its files.
func (g *clusterRig) killConverged(envs []string, version string) func() bool {
	return func() bool {
		for _, e := range envs {
			if g.hostFile(e+"-h", "/etc/a.conf") != version || g.hostFile(e+"-h", "/etc/b.conf") != version {
				return false
			}
		}
		return true
	}
}

// killEnv is environment name at version: one local host, name-h, with
// /etc/a.conf, then a command that takes 1.5 s (needed while a.conf is not
// at version), then /etc/b.conf. A host whose a.conf is at version and
// whose b.conf is not is in the middle of its batch.
func killEnv(name, version string) string {
	return fmt.Sprintf(`environment: %[1]s
hosts:
  - name: %[1]s-h
    transport: local
    resources:
      - directory: /etc
      - file: /etc/a.conf
        content: %[2]q
        requires: [directory:/etc]
      - command: slow
        run: sleep 1.5
        unless: %[3]q
        requires: [file:/etc/a.conf]
      - file: /etc/b.conf
        content: %[2]q
        requires: [command:slow]
`, name, version, fmt.Sprintf(`grep -qx %s "$DRIFTLESS_ROOT/etc/a.conf"`, version))
}

// TestClusterKillMidRollout runs three replicas (separate processes) on a
// real etcd with 20 environments, and SIGKILLs, again and again, the owner
// of an environment whose host is in the middle of its batch (half of its
// files written, a slow command running). Each time another replica takes
// the environment within the lease TTL (plus etcd's expiry tick), rolls
// the interrupted batch back and rolls the revision out again: every host
// ends on the new revision as a whole, and the shared history records the
// interrupted rollout as rolled back. A new replica then replaces the
// killed one. The hosts' write records prove that no host was ever written
// by two replicas at once and that tokens only grew. Ten kills, as the
// issue asks; DRIFTLESS_CLUSTER_KILLS sets another number.
func TestClusterKillMidRollout(t *testing.T) {
	kills := envInt(t, "DRIFTLESS_CLUSTER_KILLS", 10) // the ten; each takes about 7 s
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(kills)*40*time.Second)
	defer cancel()
	const ttl = 2 * time.Second
	g := newClusterRig(t, ctx, bin, ttl, "1h")
	envs := killEnvs(20)
	write := func(version string) { g.writeKillEnvs(envs, version) }
	converged := func(version string) func() bool { return g.killConverged(envs, version) }
	write("v1")
	for _, n := range []string{"r1", "r2", "r3"} {
		g.start(n)
	}
	if err := waitFor(ctx, time.Now().Add(2*time.Minute), converged("v1")); err != nil {
		t.Fatalf("hosts did not converge on v1: %v", err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
		t.Fatalf("ownership did not settle: %v", g.owners())
	}
	st := g.store()
	var takeovers, ends []time.Duration
	for i := range kills {
		version := fmt.Sprintf("v%d", i+2)
		target := envs[(i*7)%len(envs)]
		host := target + "-h"
		victim := g.owners()[target]
		write(version)
		// The owner dies while the target's host is half written.
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
			return g.hostFile(host, "/etc/a.conf") == version && g.hostFile(host, "/etc/b.conf") != version
		}); err != nil {
			t.Fatalf("kill %d: %s never seen in the middle of its batch: %v", i+1, host, err)
		}
		killed := g.kill(victim)
		if g.hostFile(host, "/etc/b.conf") == version {
			t.Fatalf("kill %d: %s finished its batch before %s was killed; the kill was not mid-batch", i+1, host, victim)
		}
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
			o := g.owners()[target]
			return o != "" && o != victim
		}); err != nil {
			t.Fatalf("kill %d: %s not taken over from %s: %v", i+1, target, victim, g.owners())
		}
		took := time.Since(killed)
		takeovers = append(takeovers, took)
		// etcd expires leases on a 500 ms tick; the watch and the take
		// add a few milliseconds (1.8 to 2.4 s measured with a 2 s
		// lease). The bound leaves a loaded machine (CI runs two
		// packages at once on two cores) one more TTL; the benchmark
		// measures the figure.
		if took > 2*ttl {
			t.Errorf("kill %d: %s taken over %v after the kill; the lease is %v", i+1, target, took, ttl)
		}
		if err := waitFor(ctx, time.Now().Add(time.Minute), converged(version)); err != nil {
			t.Fatalf("kill %d: hosts did not all end on %s: %v", i+1, version, err)
		}
		ends = append(ends, time.Since(killed))
		// The new owner rolled the interrupted batch back, on the host and
		// in the shared history.
		ev := g.checkRecord(host, target)
		if !slices.ContainsFunc(ev, func(e hostrecord.Event) bool {
			return e.Begin && e.Op == "recover" && e.Replica != victim && e.Time.After(killed)
		}) {
			t.Fatalf("kill %d: no recovery by the new owner in %s's record: %v", i+1, host, ev)
		}
		// The run of the rollout is recorded once the pass ends, after
		// the last write.
		var runs []store.Run
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
			runs, _ = st.History(target, 10)
			return len(runs) > 0 && runs[0].Result == status.ResultSuccess && runs[0].Start.After(killed)
		}); err != nil {
			t.Fatalf("kill %d: the newest run of %s is not a success after the kill: %+v", i+1, target, runs)
		}
		if !slices.ContainsFunc(runs, func(r store.Run) bool { return r.Result == status.ResultRolledBack && r.End.After(killed) }) {
			t.Fatalf("kill %d: the shared history of %s has no rolled-back run after the kill: %+v", i+1, target, runs)
		}
		// A new replica replaces the dead one and takes its share.
		g.start(fmt.Sprintf("r%d", i+4))
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
			t.Fatalf("kill %d: ownership did not settle with the new replica: %v", i+1, g.owners())
		}
	}
	for _, e := range envs {
		g.checkRecord(e+"-h", e)
	}
	slices.Sort(takeovers)
	slices.Sort(ends)
	t.Logf("%d kills mid-batch (lease %v): takeover after the kill min %v, median %v, max %v; every host on the new revision %v..%v after the kill",
		kills, ttl, takeovers[0].Round(time.Millisecond), takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond),
		ends[0].Round(time.Millisecond), ends[len(ends)-1].Round(time.Millisecond))
}
