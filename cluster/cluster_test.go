package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/driftless/driftless/test/etcdserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTTL is the lease of the tests' replicas: short, so that expiry is
// seen quickly.
const testTTL = 2 * time.Second

// replica is one Cluster under test, with its own client, as a separate
// daemon would have.
type replica struct {
	name   string
	c      *Cluster
	cli    *clientv3.Client
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// startReplica runs a replica until the test ends (or stop/crash).
func startReplica(t testing.TB, srv *etcdserver.Server, name string, envs []string) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, cli: cli, reg: prometheus.NewRegistry(), done: make(chan struct{})}
	r.c, err = New(Options{Client: cli, Prefix: "/test/", Replica: name, LeaseTTL: testTTL, Registerer: r.reg,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	r.c.SetEnvironments(envs)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); _ = r.c.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends the replica cleanly: its lease is revoked.
func (r *replica) stop() {
	r.cancel()
	<-r.done
	_ = r.cli.Close()
}

// crash ends the replica as a SIGKILL would: its connection goes first,
// so its lease is never revoked and must expire.
func (r *replica) crash() {
	_ = r.cli.Close()
	r.cancel()
	<-r.done
}

func envNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("env-%02d", i)
	}
	return out
}

// ownership samples every replica twice and fails the test when an
// environment is owned by two replicas in both samples (their ownership
// overlapped in time). It returns the owner of each environment.
func ownership(t testing.TB, rs []*replica, envs []string) map[string]string {
	t.Helper()
	sample := func() map[string][]string {
		out := map[string][]string{}
		for _, r := range rs {
			for _, e := range envs {
				if _, ok := r.c.Owned(e); ok {
					out[e] = append(out[e], r.name)
				}
			}
		}
		return out
	}
	first, second := sample(), sample()
	owners := map[string]string{}
	for _, e := range envs {
		both := map[string]bool{}
		for _, n := range first[e] {
			both[n] = true
		}
		var twice []string
		for _, n := range second[e] {
			if both[n] {
				twice = append(twice, n)
			}
		}
		if len(twice) > 1 {
			t.Fatalf("%s owned by %v at once", e, twice)
		}
		if len(second[e]) == 1 {
			owners[e] = second[e][0]
		}
	}
	return owners
}

// settle waits until every environment has the owner rendezvous hashing
// gives over members, checking all along that none has two, and returns
// how long it took.
func settle(t testing.TB, rs []*replica, envs, members []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		owners := ownership(t, rs, envs)
		ok := len(owners) == len(envs)
		for _, e := range envs {
			ok = ok && owners[e] == Owner(e, members)
		}
		if ok {
			took := time.Since(start)
			checkTokens(t, rs, envs)
			return took
		}
		if time.Since(start) > within {
			for _, r := range rs {
				t.Logf("%s sees members %v holders %v mine %v", r.name, r.c.Members(), r.c.Owners(), r.c.OwnedEnvironments())
			}
			t.Fatalf("ownership did not settle within %s: %v", within, owners)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkTokens checks that each owner's fencing token is its ownership
// key's create revision in etcd, and the key names the owner: the token
// the store and the hosts compare.
func checkTokens(t testing.TB, rs []*replica, envs []string) {
	t.Helper()
	cli := rs[len(rs)-1].cli
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rs {
		for _, e := range envs {
			f, ok := r.c.Owned(e)
			if !ok {
				continue
			}
			resp, err := cli.Get(ctx, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != f.Token || string(resp.Kvs[0].Value) != r.name {
				t.Fatalf("%s: %s holds token %d, etcd has %v", e, r.name, f.Token, resp.Kvs)
			}
		}
	}
}

// TestOwnershipSpreadsAndRebalances: three replicas own 60 environments
// once each, as rendezvous hashing spreads them; a fourth joins and takes
// its share within one lease TTL; one crashes and the others take its
// environments once its lease expires; no environment is ever owned
// twice. The metrics follow.
func TestOwnershipSpreadsAndRebalances(t *testing.T) {
	srv := etcdserver.Start(t)
	envs := envNames(60)
	var rs []*replica
	for _, n := range []string{"a", "b", "c"} {
		rs = append(rs, startReplica(t, srv, n, envs))
	}
	took := settle(t, rs, envs, []string{"a", "b", "c"}, 10*time.Second)
	t.Logf("3 replicas, 60 environments: settled in %s", took)
	total := 0.0
	for _, r := range rs {
		n := len(r.c.OwnedEnvironments())
		if n < 10 {
			t.Errorf("replica %s owns %d of 60 environments: not spread", r.name, n)
		}
		total += testutil.ToFloat64(r.c.m.owned)
		if got := testutil.ToFloat64(r.c.m.members); got != 3 {
			t.Errorf("replica %s: driftless_cluster_members = %v, want 3", r.name, got)
		}
		if got := testutil.ToFloat64(r.c.m.etcdUp); got != 1 {
			t.Errorf("replica %s: driftless_cluster_etcd_up = %v, want 1", r.name, got)
		}
	}
	if total != 60 {
		t.Errorf("driftless_cluster_owned_environments sums to %v, want 60", total)
	}

	// Replicas starting one after the other move a few environments
	// while they see each other join; from here, only d's share moves.
	changesBefore := 0.0
	for _, r := range rs {
		changesBefore += testutil.ToFloat64(r.c.m.changes)
	}
	if changesBefore < 60 {
		t.Errorf("driftless_cluster_ownership_changes_total sums to %v, want at least 60", changesBefore)
	}
	d := startReplica(t, srv, "d", envs)
	rs = append(rs, d)
	took = settle(t, rs, envs, []string{"a", "b", "c", "d"}, testTTL)
	t.Logf("a fourth replica joined: rebalanced in %s", took)
	if n := len(d.c.OwnedEnvironments()); n < 5 {
		t.Errorf("the fourth replica took %d environments", n)
	}
	changes := 0.0
	for _, r := range rs {
		changes += testutil.ToFloat64(r.c.m.changes)
	}
	if want := changesBefore + float64(len(d.c.OwnedEnvironments())); changes != want {
		t.Errorf("driftless_cluster_ownership_changes_total sums to %v, want %v", changes, want)
	}

	rs[0].crash()
	took = settle(t, rs[1:], envs, []string{"b", "c", "d"}, 2*testTTL)
	t.Logf("replica a crashed: its environments taken over in %s (lease TTL %s)", took, testTTL)
	if took > testTTL+time.Second {
		t.Errorf("takeover after a crash took %s, more than the lease TTL %s and 1s", took, testTTL)
	}
}

// TestEtcdLostStopsOwning: while etcd is down past the lease, replicas
// own nothing and are not ready; when it returns they own everything
// again, with new, higher tokens.
func TestEtcdLostStopsOwning(t *testing.T) {
	srv := etcdserver.Start(t)
	envs := envNames(10)
	rs := []*replica{startReplica(t, srv, "a", envs), startReplica(t, srv, "b", envs)}
	settle(t, rs, envs, []string{"a", "b"}, 10*time.Second)
	before := map[string]int64{}
	for _, r := range rs {
		for _, e := range r.c.OwnedEnvironments() {
			f, _ := r.c.Owned(e)
			before[e] = f.Token
		}
	}
	srv.Stop()
	stopped := time.Now()
	for _, r := range rs {
		for r.c.Ready() {
			if time.Since(stopped) > testTTL {
				t.Fatalf("replica %s still ready %s after etcd stopped", r.name, time.Since(stopped))
			}
			time.Sleep(5 * time.Millisecond)
		}
		if owned := r.c.OwnedEnvironments(); len(owned) != 0 {
			t.Fatalf("replica %s not ready but owns %v", r.name, owned)
		}
		// The metrics follow at the session loop's next tick.
		for testutil.ToFloat64(r.c.m.etcdUp) != 0 || testutil.ToFloat64(r.c.m.owned) != 0 {
			if time.Since(stopped) > 2*testTTL {
				t.Fatalf("replica %s: etcd_up %v, owned %v; want 0, 0", r.name, testutil.ToFloat64(r.c.m.etcdUp), testutil.ToFloat64(r.c.m.owned))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("not ready %s after etcd stopped (lease TTL %s)", time.Since(stopped), testTTL)
	time.Sleep(testTTL)
	srv.Restart()
	settle(t, rs, envs, []string{"a", "b"}, 6*testTTL)
	for _, r := range rs {
		if !r.c.Ready() {
			t.Fatalf("replica %s not ready after etcd returned", r.name)
		}
		for _, e := range r.c.OwnedEnvironments() {
			if f, _ := r.c.Owned(e); f.Token <= before[e] {
				t.Errorf("%s: token %d after etcd returned, %d before: not higher", e, f.Token, before[e])
			}
		}
	}
}

// TestReleaseWaitsForWork: a replica giving an environment up calls
// Release with the environment already unowned, and the next owner takes
// it only after Release returned.
func TestReleaseWaitsForWork(t *testing.T) {
	srv := etcdserver.Start(t)
	envs := envNames(20)
	var mu sync.Mutex
	released := map[string]time.Time{}
	a := startReplica(t, srv, "a", nil)
	a.c.o.Release = func(env string) {
		if _, ok := a.c.Owned(env); ok {
			t.Errorf("Release(%s) called while still owned", env)
		}
		time.Sleep(100 * time.Millisecond) // the worker finishing its pass
		mu.Lock()
		released[env] = time.Now()
		mu.Unlock()
	}
	a.c.SetEnvironments(envs)
	settle(t, []*replica{a}, envs, []string{"a"}, 10*time.Second)
	b := startReplica(t, srv, "b", envs)
	settle(t, []*replica{a, b}, envs, []string{"a", "b"}, testTTL+time.Second)
	moved := b.c.OwnedEnvironments()
	if len(moved) == 0 {
		t.Fatal("no environment moved to b")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range moved {
		if released[e].IsZero() {
			t.Errorf("%s moved to b without a's Release", e)
		}
	}
}

// TestOwner: rendezvous hashing gives every environment one owner among
// the members, the same whatever their order, and moves only the new
// member's share when one joins.
func TestOwner(t *testing.T) {
	if Owner("prod", nil) != "" {
		t.Fatal("an owner without members")
	}
	envs := envNames(1000)
	three, four := []string{"a", "b", "c"}, []string{"d", "c", "b", "a"}
	count := map[string]int{}
	for _, e := range envs {
		o3, o4 := Owner(e, three), Owner(e, four)
		if o3 != Owner(e, []string{"c", "a", "b"}) {
			t.Fatalf("%s: the owner depends on the members' order", e)
		}
		if o4 != o3 && o4 != "d" {
			t.Fatalf("%s moved from %s to %s when d joined", e, o3, o4)
		}
		count[o4]++
	}
	for _, m := range four {
		if count[m] < 200 || count[m] > 300 {
			t.Errorf("member %s owns %d of 1000 environments (want about 250)", m, count[m])
		}
	}
}

// TestMetricNamesAndLabels checks the cluster's series against
// DESIGN.md's table: names, types and label names exactly.
func TestMetricNamesAndLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Client: &clientv3.Client{}, Replica: "a", LeaseTTL: testTTL, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"driftless_cluster_members":                 "GAUGE",
		"driftless_cluster_owned_environments":      "GAUGE replica",
		"driftless_cluster_ownership_changes_total": "COUNTER",
		"driftless_cluster_etcd_up":                 "GAUGE",
		"driftless_cluster_unowned_environments":    "GAUGE",
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range fams {
		desc := mf.GetType().String()
		for _, l := range mf.GetMetric()[0].GetLabel() {
			desc += " " + l.GetName()
		}
		got[mf.GetName()] = desc
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cluster metrics = %v, want %v", got, want)
	}
}
