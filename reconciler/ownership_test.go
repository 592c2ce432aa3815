package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/cluster"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/etcdserver"
	"github.com/driftless/driftless/test/hostrecord"
)

// replica is one replica of TestClusterOwnedWorkers: its reconciler on the
// shared etcd store, its cluster membership, and their loops.
type replica struct {
	r       *Reconciler
	c       *cluster.Cluster
	revs    chan sources.Revision
	stop    context.CancelFunc
	stopped chan struct{}
}

// startReplica runs a reconciler of f's world as replica name: its own
// etcd client, the shared store (box seals it), ownership from etcd.
func startReplica(t *testing.T, f *fixture, srv *etcdserver.Server, box *secrets.Box, name string) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	st, err := store.OpenEtcd(store.EtcdOptions{Client: cli, Prefix: "/dl/", Box: box})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rp := &replica{revs: make(chan sources.Revision, 4), stopped: make(chan struct{})}
	rp.c, err = cluster.New(cluster.Options{Client: cli, Prefix: "/dl/", Replica: name, LeaseTTL: 2 * time.Second,
		Release: func(env string) { rp.r.Release(env) }, Changed: func() { rp.r.OwnershipChanged() },
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("replica", name).Logger()})
	if err != nil {
		t.Fatal(err)
	}
	rp.r = f.restarted(func(o *Options) { o.Store, o.Ownership = st, rp.c })
	ctx, cancel := context.WithCancel(context.Background())
	rp.stop = cancel
	cdone := make(chan struct{})
	go func() {
		defer close(cdone)
		_ = rp.c.Run(ctx)
	}()
	go func() {
		defer close(rp.stopped)
		_ = rp.r.Run(ctx, rp.revs)
		<-cdone
	}()
	t.Cleanup(func() { cancel(); <-rp.stopped })
	return rp
}

// TestClusterOwnedWorkers: two replicas on one etcd get the same
// revisions; each environment is rolled out once, by its owner, through
// a fenced store. When one replica leaves, the other takes its
// environments and rolls out the next revision on all of them, and the
// replica that left can write nothing more.
func TestClusterOwnedWorkers(t *testing.T) {
	srv := etcdserver.Start(t)
	box, err := secrets.NewBox()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	envs := []string{"e1", "e2", "e3", "e4", "e5", "e6"}
	files := func(content string) map[string]string {
		m := map[string]string{}
		for _, e := range envs {
			m["environments/"+e+".yaml"] = envYAML(e, []string{e + "-h"}, nil, etc+fileRes("/etc/app.conf", content), "")
		}
		return m
	}
	a := startReplica(t, f, srv, box, "a")
	b := startReplica(t, f, srv, box, "b")
	// The cluster learns the environments from a first revision that
	// declares them and deploys nothing; the next one is rolled out once
	// ownership settled.
	rev0 := f.revision(files("zero"))
	a.revs <- rev0
	b.revs <- rev0
	eventually(t, "every environment owned, by both replicas", func() bool {
		return len(a.c.Owners()) == len(envs) && len(a.c.OwnedEnvironments())+len(b.c.OwnedEnvironments()) == len(envs) &&
			len(a.c.OwnedEnvironments()) > 0 && len(b.c.OwnedEnvironments()) > 0
	})
	for _, e := range envs {
		eventually(t, e+" at the first revision", func() bool { return f.hostFile(e+"-h", "/etc/app.conf") == "zero" })
	}
	rev1 := f.revision(files("one"))
	a.revs <- rev1
	b.revs <- rev1
	for _, e := range envs {
		eventually(t, e+" rolled out", func() bool { return f.hostFile(e+"-h", "/etc/app.conf") == "one" })
	}
	byA := map[string]bool{}
	for _, e := range a.c.OwnedEnvironments() {
		byA[e] = true
	}
	for _, e := range envs {
		eventually(t, e+" recorded", func() bool { return runsOf(t, b.r, e, rev1) == 1 })
	}
	// A request at a replica that does not own the environment is refused.
	for e := range byA {
		if err := b.r.Sync(context.Background(), e); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("sync of %s at replica b, a owning it: %v, want ErrNotOwner", e, err)
		}
		break
	}
	// a leaves: b takes every environment and rolls out the next revision.
	a.stop()
	<-a.stopped
	eventually(t, "b owns everything", func() bool { return len(b.c.OwnedEnvironments()) == len(envs) })
	rev2 := f.revision(files("two"))
	b.revs <- rev2
	for _, e := range envs {
		eventually(t, e+" at the second revision", func() bool { return f.hostFile(e+"-h", "/etc/app.conf") == "two" })
		eventually(t, e+" recorded", func() bool { return runsOf(t, b.r, e, rev2) == 1 })
		if n := runsOf(t, b.r, e, rev1); n != 1 {
			t.Fatalf("%s has %d runs of %s; want 1 (one owner rolled it out)", e, n, rev1.Short())
		}
		h, err := b.r.History(e, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(h); i++ { // newest first
			if h[i].End.After(h[i-1].Start) {
				t.Fatalf("%s: run %d (%s..%s) overlaps run %d (%s..%s): two workers at once", e,
					h[i].ID, h[i].Start, h[i].End, h[i-1].ID, h[i-1].Start, h[i-1].End)
			}
		}
	}
	// Each host's record names a's writes, then b's, never both at once,
	// with tokens that only grow.
	for _, e := range envs {
		ev, err := hostrecord.Parse([]byte(f.hostFile(e+"-h", "/var/lib/driftless/fence/"+e+".log")))
		if err != nil {
			t.Fatal(err)
		}
		if err := hostrecord.Check(ev, nil); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if len(ev) < 4 || ev[len(ev)-1].Replica != "b" || byA[e] && ev[0].Replica != "a" {
			t.Fatalf("%s: the host's record %v does not name the replicas that wrote it", e, ev)
		}
	}
	for e := range byA {
		if err := a.r.store.PutEnv(store.EnvRecord{Name: e}); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("replica a writes %s after leaving: %v, want ErrFenced", e, err)
		}
	}
	if len(byA) == 0 || len(byA) == len(envs) {
		t.Fatalf("replica a owned %d of %d environments; want a share", len(byA), len(envs))
	}
}

// runsOf counts the runs of rev in the environment's history.
func runsOf(t *testing.T, r *Reconciler, env string, rev sources.Revision) int {
	t.Helper()
	h, err := r.History(env, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, run := range h {
		if run.Revision.Commit == rev.Commit && run.Trigger == status.TriggerRevision {
			n++
		}
	}
	return n
}

// TestHostFenceRefusesOlderToken: a replica's rollout records its fencing
// token on the host; once a newer owner's higher token is there (a
// replica paused past its lease resuming after a takeover), the replica
// writes nothing to the host and its run fails, saying why.
func TestHostFenceRefusesOlderToken(t *testing.T) {
	srv := etcdserver.Start(t)
	box, err := secrets.NewBox()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	a := startReplica(t, f, srv, box, "a")
	files := func(content string) map[string]string {
		return map[string]string{"environments/e1.yaml": envYAML("e1", []string{"e1-h"}, nil, etc+fileRes("/etc/app.conf", content), "")}
	}
	rev1 := f.revision(files("one"))
	a.revs <- rev1
	eventually(t, "e1 owned", func() bool { return len(a.c.OwnedEnvironments()) == 1 })
	eventually(t, "e1 rolled out", func() bool { return f.hostFile("e1-h", "/etc/app.conf") == "one" })
	fence, _ := a.c.Owned("e1")
	if got := f.hostFile("e1-h", "/var/lib/driftless/fence/e1"); got != fmt.Sprintf("%d\n", fence.Token) {
		t.Fatalf("host fence file: %q, want the owner's token %d", got, fence.Token)
	}
	// A newer owner applied with a higher token.
	f.writeHostFile("e1-h", "/var/lib/driftless/fence/e1", fmt.Sprintf("%d\n", fence.Token+1000))
	rev2 := f.revision(files("two"))
	a.revs <- rev2
	eventually(t, "the rollout of the second revision recorded", func() bool { return runsOf(t, a.r, "e1", rev2) >= 1 })
	if got := f.hostFile("e1-h", "/etc/app.conf"); got != "one" {
		t.Fatalf("the replica with the older token wrote the host: %q", got)
	}
	h, err := a.r.History("e1", 1)
	if err != nil || len(h) != 1 || h[0].Result == status.ResultSuccess || !strings.Contains(h[0].Error, "a newer owner") {
		t.Fatalf("run of the older token: %+v, %v; want a failure naming the newer owner", h, err)
	}
	if got := f.hostFile("e1-h", "/var/lib/driftless/fence/e1"); got != fmt.Sprintf("%d\n", fence.Token+1000) {
		t.Fatalf("host fence file lowered to %q", got)
	}
	// The host's record names a's one run of writes, and nothing since.
	ev, err := hostrecord.Parse([]byte(f.hostFile("e1-h", "/var/lib/driftless/fence/e1.log")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || !ev[0].Begin || ev[1].Begin || ev[0].Replica != "a" || ev[0].Token != fence.Token || ev[0].Op != "apply" || ev[1].Time.Before(ev[0].Time) {
		t.Fatalf("host record %v; want a's begin and end of one apply with token %d", ev, fence.Token)
	}
}
