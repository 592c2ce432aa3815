package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/cluster"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/test/hostrecord"
)

// TestClusterPausedReplicaFenced runs three replicas (separate processes)
// on a real etcd with 20 environments, then declares one more, whose owner
// stops itself (SIGSTOP, the daemon's test hook) at the fixed point
// between its check of ownership and its first write to the host: it has
// begun its writes on the host, with its fencing token, and written
// nothing yet. While it is stopped a new revision arrives. Past the lease
// another replica takes the environment with a higher token, brings the
// interrupted rollout to its end and applies the new revision. Then the
// stopped replica is resumed (SIGCONT): the host refuses its pending
// write for its stale token, the file keeps the new owner's content, the
// shared history never gets the stopped replica's run, and the hosts'
// write records show no write of it with its old token after the other
// began.
func TestClusterPausedReplicaFenced(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ttl = 2 * time.Second
	g := newClusterRig(t, ctx, bin, ttl, "1h")
	envs := killEnvs(20)
	g.writeKillEnvs(envs, "v1")
	const target = "paused"
	host := target + "-h"
	names := []string{"r1", "r2", "r3"}
	victim := cluster.Owner(target, names)
	var paused *rigReplica
	for _, n := range names {
		if n == victim {
			paused = g.start(n, stopBeforeHostWriteVar+"="+target)
		} else {
			g.start(n)
		}
	}
	if err := waitFor(ctx, time.Now().Add(2*time.Minute), g.killConverged(envs, "v1")); err != nil {
		t.Fatalf("hosts did not converge on v1: %v", err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(envs) }); err != nil {
		t.Fatalf("ownership did not settle: %v", g.owners())
	}
	// The target's host has its /etc: the rollout's first write is the
	// file /etc/a.conf, whose content tells which revision wrote it.
	if err := os.MkdirAll(filepath.Join(g.root, host, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	g.writeEnv(target, killEnv(target, "v1"))
	stopped, err := g.waitStopped(victim, time.Minute)
	if err != nil {
		t.Fatalf("%v (owners %v)", err, g.owners())
	}
	ev := g.record(host, target)
	if len(ev) != 1 || !ev[0].Begin || ev[0].Replica != victim {
		t.Fatalf("%s stopped, but the record of %s is not its one begin of writes: %v", victim, host, ev)
	}
	stale := ev[0].Token
	if a := g.hostFile(host, "/etc/a.conf"); a != "" {
		t.Fatalf("%s stopped before its first write, yet /etc/a.conf holds %q", victim, a)
	}
	g.writeEnv(target, killEnv(target, "v2"))

	// Past the lease another replica takes the environment and applies v2.
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		o := g.owners()[target]
		return o != "" && o != victim
	}); err != nil {
		t.Fatalf("%s not taken over from the stopped %s: %v", target, victim, g.owners())
	}
	took := time.Since(stopped)
	// As in TestClusterKillMidRollout: the lease, etcd's expiry tick, and
	// slack for a loaded machine.
	if took > 2*ttl {
		t.Errorf("%s taken over %v after %s was seen stopped; the lease is %v", target, took, victim, ttl)
	}
	var newer hostrecord.Event
	if err := waitFor(ctx, time.Now().Add(time.Minute), func() bool {
		if !g.killConverged([]string{target}, "v2")() {
			return false
		}
		// Read while the new owner writes it: a line half written is
		// read again.
		ev, err := hostrecord.Parse([]byte(g.hostFile(host, "/var/lib/driftless/fence/"+target+".log")))
		if err != nil || len(ev) == 0 {
			return false
		}
		newer = ev[len(ev)-1]
		return !newer.Begin && newer.Replica != victim && newer.Token > stale
	}); err != nil {
		t.Fatalf("the new owner did not apply v2 to %s: a.conf %q, b.conf %q, record %v", host,
			g.hostFile(host, "/etc/a.conf"), g.hostFile(host, "/etc/b.conf"), g.record(host, target))
	}

	// Resumed, the stopped replica goes on to its pending write (a.conf
	// at v1), which the host refuses: a newer owner applied to it.
	g.cont(victim, stopped)
	refusal := fmt.Sprintf("token %d applied to this host, the request has %d", newer.Token, stale)
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		return strings.Contains(paused.logs.String(), refusal)
	}); err != nil {
		t.Fatalf("%s never logged the host's refusal %q:\n%s", victim, refusal, tail(paused.logs.String(), 8<<10))
	}
	// It closes its record, late; then, whatever it owns again, it owns
	// with a new token.
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		ev, err := hostrecord.Parse([]byte(g.hostFile(host, "/var/lib/driftless/fence/"+target+".log")))
		return err == nil && slices.ContainsFunc(ev, func(e hostrecord.Event) bool {
			return !e.Begin && e.Replica == victim && e.Token == stale
		})
	}); err != nil {
		t.Fatalf("%s did not close its record on %s: %v", victim, host, g.record(host, target))
	}
	// Over three leases, while the cluster settles again with it, its
	// stale write never lands.
	until := time.Now().Add(3 * ttl)
	for time.Now().Before(until) {
		if a := g.hostFile(host, "/etc/a.conf"); a != "v2" {
			t.Fatalf("/etc/a.conf of %s is %q after %s resumed: its stale write landed", host, a, victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := append(slices.Clone(envs), target)
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return g.settled(all) }); err != nil {
		t.Fatalf("ownership did not settle after %s resumed: %v", victim, g.owners())
	}
	if !g.killConverged(envs, "v1")() || !g.killConverged([]string{target}, "v2")() {
		t.Fatal("hosts left their declared state after the resume")
	}
	// The stopped replica's run began before it stopped; the shared
	// history has only the runs of owners after it.
	runs, err := g.store().History(target, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		t.Fatalf("the shared history of %s is empty", target)
	}
	if i := slices.IndexFunc(runs, func(r store.Run) bool { return r.Start.Before(stopped) }); i >= 0 {
		t.Fatalf("the stopped replica's run of %s was recorded: %+v", target, runs[i])
	}
	for _, e := range all {
		g.checkRecord(e+"-h", e)
	}
	t.Logf("%s stopped before its write with token %d; %s took %s over %v after, with token %d; the host refused the stale write on resume",
		victim, stale, newer.Replica, target, took.Round(time.Millisecond), newer.Token)
}
