package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/etcdserver"
)

// etcdClient connects to srv; the client is closed when t ends.
func etcdClient(t testing.TB, srv *etcdserver.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// etcdOpener opens stores on one etcd server, each under a prefix of its
// own, so that every store starts empty.
func etcdOpener(srv *etcdserver.Server) opener {
	var n atomic.Int32
	return func(t *testing.T, keep int) Store {
		box, err := secrets.NewBox()
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenEtcd(EtcdOptions{Client: etcdClient(t, srv), Prefix: fmt.Sprintf("/t%d/", n.Add(1)), Box: box, History: keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

// TestEtcdConformance runs the store suite against a real etcd server.
func TestEtcdConformance(t *testing.T) {
	runConformance(t, etcdOpener(etcdserver.Start(t)))
}

// TestEtcdFence: a fenced store writes while its ownership key has the
// token's create revision; once another owner created the key anew, every
// kind of write fails with ErrFenced and writes nothing, while an
// unfenced comparison failing under a valid fence is no ErrFenced.
func TestEtcdFence(t *testing.T) {
	srv := etcdserver.Start(t)
	cli := etcdClient(t, srv)
	s := etcdOpener(srv)(t, 0).(*EtcdStore)
	ctx := context.Background()
	own := s.p + "owner/prod"
	put, err := cli.Put(ctx, own, "replica-a")
	if err != nil {
		t.Fatal(err)
	}
	fenced := s.Fenced(Fence{Key: own, Token: put.Header.Revision})
	if err := fenced.BeginJournal(Journal{Environment: "prod"}); err != nil {
		t.Fatalf("owner's BeginJournal: %v", err)
	}
	if ok, err := fenced.UpdateRun(Run{ID: 9, Environment: "prod"}); ok || err != nil {
		t.Fatalf("owner's UpdateRun of no run: ok=%v err=%v, want false, nil", ok, err)
	}
	// Another replica takes the environment: the key is created anew.
	if _, err := cli.Delete(ctx, own); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, own, "replica-b"); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctx, s.p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	entry := []JournalEntry{{Host: "h", Resource: config.Resource{Kind: "file", Name: "/a"}}}
	writes := map[string]func() error{
		"PutEnv":          func() error { return fenced.PutEnv(EnvRecord{Name: "prod"}) },
		"AddRun":          func() error { _, err := fenced.AddRun(Run{Environment: "prod"}); return err },
		"UpdateRun":       func() error { _, err := fenced.UpdateRun(Run{ID: 1, Environment: "prod"}); return err },
		"BeginJournal":    func() error { return fenced.BeginJournal(Journal{Environment: "prod"}) },
		"RecordSnapshots": func() error { _, err := fenced.RecordSnapshots("prod", entry); return err },
		"FinishEntries":   func() error { return fenced.FinishEntries("prod", nil, []uint64{1}) },
		"EndJournal":      func() error { return fenced.EndJournal("prod") },
		"CompleteJournal": func() error {
			_, err := fenced.CompleteJournal(EnvRecord{Name: "prod"}, Run{Environment: "prod"})
			return err
		},
		"ForgetFirstManaged": func() error { return fenced.ForgetFirstManaged("prod", "h", "file:/a") },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s by the old owner: %v, want ErrFenced", name, err)
		}
	}
	after, err := cli.Get(ctx, s.p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision {
		t.Fatalf("fenced writes changed etcd: revision %d -> %d", before.Header.Revision, after.Header.Revision)
	}
	// Deliveries are the replica's: a fenced view still marks them.
	if seen, err := fenced.MarkDelivery("github", []string{"d1"}, time.Now(), time.Hour); err != nil || seen {
		t.Fatalf("MarkDelivery through a lost fence: seen=%v err=%v", seen, err)
	}
}

// TestEtcdDeliveriesShared: two replicas (two clients, one prefix) share
// one replay window: what one took is a replay at the other, and of both
// taking one new delivery at once exactly one takes it as new.
func TestEtcdDeliveriesShared(t *testing.T) {
	srv := etcdserver.Start(t)
	box, err := secrets.NewBox()
	if err != nil {
		t.Fatal(err)
	}
	var replicas [2]*EtcdStore
	for i := range replicas {
		if replicas[i], err = OpenEtcd(EtcdOptions{Client: etcdClient(t, srv), Prefix: "/shared/", Box: box}); err != nil {
			t.Fatal(err)
		}
		defer replicas[i].Close()
	}
	now := time.Now()
	if seen, err := replicas[0].MarkDelivery("github", []string{"d1", "body-1"}, now, time.Hour); err != nil || seen {
		t.Fatalf("first sight: %v %v", seen, err)
	}
	if seen, err := replicas[1].MarkDelivery("github", []string{"d2", "body-1"}, now.Add(time.Second), time.Hour); err != nil || !seen {
		t.Fatalf("the same body at the other replica: seen=%v err=%v", seen, err)
	}
	for round := range 20 {
		id := fmt.Sprint("race-", round)
		results := make(chan bool, 2)
		for _, r := range replicas {
			go func() {
				seen, err := r.MarkDelivery("github", []string{id}, now, time.Hour)
				if err != nil {
					t.Error(err)
				}
				results <- seen
			}()
		}
		if a, b := <-results, <-results; a == b {
			t.Fatalf("round %d: both replicas answered seen=%v", round, a)
		}
	}
	// The keys are on a lease a little longer than the window.
	resp, err := etcdClient(t, srv).Get(context.Background(), "/shared/delivery/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("no delivery keys: %v", err)
	}
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			t.Fatalf("delivery key %s has no lease", kv.Key)
		}
	}
	ttl, err := etcdClient(t, srv).TimeToLive(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL < 3600 || ttl.GrantedTTL > 3960 {
		t.Fatalf("delivery lease granted %d s (%v), want 1.1 h", ttl.GrantedTTL, err)
	}
}

// TestEtcdJournalSurvivesReplica: a journal one replica recorded (with a
// secret entry) is read whole by another replica sharing the store's age
// identity: the replica that takes over an environment can finish its
// interrupted rollout.
func TestEtcdJournalSurvivesReplica(t *testing.T) {
	srv := etcdserver.Start(t)
	box, err := secrets.NewBox()
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenEtcd(EtcdOptions{Client: etcdClient(t, srv), Prefix: "/p/", Box: box})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.BeginJournal(Journal{Environment: "prod", Revision: sources.Revision{Commit: "c9"}, Hosts: []config.Host{{Name: "h", Vars: map[string]any{"k": "v"}}}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/token", Spec: &targets.FileSpec{Content: "s3cret-new", Secret: true}}
	if _, err := a.RecordSnapshots("prod", []JournalEntry{{Host: "h", Resource: res, Snapshot: targets.State{Present: true, Content: []byte("s3cret-old")}}}); err != nil {
		t.Fatal(err)
	}
	// Nothing in etcd holds the secret or the host's variables in clear.
	raw, err := etcdClient(t, srv).Get(context.Background(), "/p/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range raw.Kvs {
		if v := string(kv.Value); strings.Contains(v, "s3cret") || strings.Contains(v, `"k"`) {
			t.Fatalf("%s holds a secret or a variable in clear: %s", kv.Key, v)
		}
	}
	b, err := OpenEtcd(EtcdOptions{Client: etcdClient(t, srv), Prefix: "/p/", Box: box})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	j, entries, err := b.OpenJournal("prod")
	if err != nil || j == nil || j.Revision.Commit != "c9" || len(entries) != 1 || string(entries[0].Snapshot.Content) != "s3cret-old" {
		t.Fatalf("the other replica read %+v %+v %v", j, entries, err)
	}
}

// TestEncodeRunCapped: a run past maxRunBytes loses its diffs first, then
// changes, then the end of its error, and stays decodable.
func TestEncodeRunCapped(t *testing.T) {
	r := Run{Environment: "prod", Result: "success"}
	for i := range 50 {
		r.Changed = append(r.Changed, ResourceChange{Host: "h", Resource: fmt.Sprint("file:/f", i), Action: "update", Diff: strings.Repeat("x", 1000)})
	}
	data, err := encodeRun(r)
	if err != nil || len(data) > maxRunBytes {
		t.Fatalf("encoded %d bytes, %v", len(data), err)
	}
	var got Run
	if err := json.Unmarshal(data, &got); err != nil || len(got.Changed) != 50 || got.Changed[0].Diff != "" {
		t.Fatalf("diffs not dropped: %d changes, diff %q, %v", len(got.Changed), got.Changed[0].Diff, err)
	}
	if r.Changed[0].Diff == "" {
		t.Fatal("encodeRun changed its argument")
	}
	for i := range 2000 {
		r.Changed = append(r.Changed, ResourceChange{Host: "h", Resource: fmt.Sprint("file:/g", i), Action: "update"})
	}
	if data, err := encodeRun(r); err != nil || len(data) > maxRunBytes {
		t.Fatalf("2,050 changes encoded in %d bytes, %v", len(data), err)
	}
	// An error quoting a host's long output keeps its start.
	r.Error = "apply command:x on h: exit 1: " + strings.Repeat("é", 40<<10)
	data, err = encodeRun(r)
	if err != nil || len(data) > maxRunBytes {
		t.Fatalf("a 80 KiB error encoded in %d bytes, %v", len(data), err)
	}
	if err := json.Unmarshal(data, &got); err != nil || !strings.HasPrefix(got.Error, "apply command:x on h: exit 1: é") || !strings.HasSuffix(got.Error, " [cut]") {
		t.Fatalf("the error was not cut at its end: %.60q..., %v", got.Error, err)
	}
}

// TestEtcdOwned: the store of a replica in cluster mode writes an
// environment only under the fence its worker holds: an environment
// without one is refused (nothing written), and a fence another owner
// replaced is refused by etcd.
func TestEtcdOwned(t *testing.T) {
	srv := etcdserver.Start(t)
	cli := etcdClient(t, srv)
	base := etcdOpener(srv)(t, 0).(*EtcdStore)
	ctx := context.Background()
	own := base.p + "owners/prod"
	put, err := cli.Put(ctx, own, "replica-a")
	if err != nil {
		t.Fatal(err)
	}
	fences := map[string]Fence{"prod": {Key: own, Token: put.Header.Revision}}
	s := Owned(base, func(env string) (Fence, bool) { f, ok := fences[env]; return f, ok })
	if err := s.PutEnv(EnvRecord{Name: "prod"}); err != nil {
		t.Fatalf("owned PutEnv: %v", err)
	}
	if _, err := s.AddRun(Run{Environment: "prod"}); err != nil {
		t.Fatalf("owned AddRun: %v", err)
	}
	before, err := cli.Get(ctx, base.p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutEnv(EnvRecord{Name: "staging"}); !errors.Is(err, ErrFenced) {
		t.Fatalf("PutEnv of an environment not owned: %v, want ErrFenced", err)
	}
	if err := s.BeginJournal(Journal{Environment: "staging"}); !errors.Is(err, ErrFenced) {
		t.Fatalf("BeginJournal of an environment not owned: %v, want ErrFenced", err)
	}
	if _, err := cli.Delete(ctx, own); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, own, "replica-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRun(Run{Environment: "prod"}); !errors.Is(err, ErrFenced) {
		t.Fatalf("AddRun after another replica took prod: %v, want ErrFenced", err)
	}
	after, err := cli.Get(ctx, base.p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// The only change is the ownership key, created anew (delete, put).
	if after.Header.Revision != before.Header.Revision+2 {
		t.Fatalf("refused writes changed etcd: revision %d -> %d, want +2 (the key taken anew)", before.Header.Revision, after.Header.Revision)
	}
	recs, err := s.Envs()
	if err != nil || len(recs) != 1 || recs[0].Name != "prod" {
		t.Fatalf("records read through the owned store: %+v, %v; want prod only", recs, err)
	}
	if seen, err := s.MarkDelivery("github", []string{"d1"}, time.Now(), time.Hour); err != nil || seen {
		t.Fatalf("MarkDelivery through the owned store: seen=%v err=%v", seen, err)
	}
}

// lostAnswerKV is a client's KV whose next write transaction that etcd
// applies answers with an error, as a timeout or a connection cut during
// an etcd restart does: the client cannot tell it went through.
type lostAnswerKV struct {
	clientv3.KV
	lose *atomic.Bool
}

func (k lostAnswerKV) Txn(ctx context.Context) clientv3.Txn {
	return &lostAnswerTxn{Txn: k.KV.Txn(ctx), lose: k.lose}
}

type lostAnswerTxn struct {
	clientv3.Txn
	lose   *atomic.Bool
	writes bool
}

func (t *lostAnswerTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *lostAnswerTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		t.writes = t.writes || op.IsPut() || op.IsDelete()
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *lostAnswerTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *lostAnswerTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil && t.writes && resp.Succeeded && t.lose.CompareAndSwap(true, false) {
		return nil, context.DeadlineExceeded
	}
	return resp, err
}

// TestEtcdCompleteJournalAnswerLost: a rollout's completion that etcd
// applied but whose answer was lost, tried again (as the worker does
// while it owns the environment), records the run once and returns its
// id. Before the completion was conditional on its journal, the retry
// appended the run again (two runs in history for one rollout).
func TestEtcdCompleteJournalAnswerLost(t *testing.T) {
	srv := etcdserver.Start(t)
	cli := etcdClient(t, srv)
	lose := new(atomic.Bool)
	cli.KV = lostAnswerKV{KV: cli.KV, lose: lose}
	box, err := secrets.NewBox()
	if err != nil {
		t.Fatal(err)
	}
	base, err := OpenEtcd(EtcdOptions{Client: cli, Prefix: "/p/", Box: box})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	ctx := context.Background()
	put, err := cli.Put(ctx, "/p/owners/prod", "replica-a")
	if err != nil {
		t.Fatal(err)
	}
	s := base.Fenced(Fence{Key: "/p/owners/prod", Token: put.Header.Revision})
	rev := sources.Revision{Commit: "c1"}
	if err := s.BeginJournal(Journal{Environment: "prod", Revision: rev}); err != nil {
		t.Fatal(err)
	}
	run := Run{Environment: "prod", Revision: rev, Trigger: "revision", Start: time.Now(), End: time.Now(), Result: "success"}
	lose.Store(true)
	if _, err := s.CompleteJournal(EnvRecord{Name: "prod", Applied: rev}, run); err == nil {
		t.Fatal("the completion whose answer was lost returned no error: the test lost nothing")
	}
	id, err := s.CompleteJournal(EnvRecord{Name: "prod", Applied: rev}, run)
	if err != nil || id != 1 {
		t.Fatalf("completion tried again = %d, %v; want run 1", id, err)
	}
	if runs, err := s.History("prod", 0); err != nil || len(runs) != 1 || runs[0].ID != 1 {
		t.Fatalf("history after the completion tried again = %+v, %v; want the one run", runs, err)
	}
	if j, _, err := s.OpenJournal("prod"); err != nil || j != nil {
		t.Fatalf("journal after completion: %+v, %v", j, err)
	}
	if rec, ok, err := s.Env("prod"); err != nil || !ok || rec.Applied.Commit != "c1" {
		t.Fatalf("record after completion: %+v %v %v", rec, ok, err)
	}
	// A later rollout's completion is a run of its own.
	later := run
	later.Start = run.Start.Add(time.Second)
	if err := s.BeginJournal(Journal{Environment: "prod", Revision: rev}); err != nil {
		t.Fatal(err)
	}
	if id, err := s.CompleteJournal(EnvRecord{Name: "prod", Applied: rev}, later); err != nil || id != 2 {
		t.Fatalf("the next rollout's completion = %d, %v; want run 2", id, err)
	}
}

// TestEtcdRefusedForGood: a write etcd refuses whatever the number of
// tries (here a request beyond its size limit) is ErrRefused, which the
// worker does not try again; an unreachable etcd is not.
func TestEtcdRefusedForGood(t *testing.T) {
	srv := etcdserver.Start(t)
	s := etcdOpener(srv)(t, 0)
	err := s.PutEnv(EnvRecord{Name: "prod", LastError: strings.Repeat("x", 1600<<10)})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("a record beyond etcd's request limit: %v, want ErrRefused", err)
	}
	if err := s.PutEnv(EnvRecord{Name: "prod"}); err != nil {
		t.Fatalf("a record within the limit: %v", err)
	}
	if errors.Is(refused(context.DeadlineExceeded), ErrRefused) {
		t.Fatal("a timeout is taken for a refusal")
	}
}
