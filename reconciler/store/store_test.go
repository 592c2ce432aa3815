package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

func openTestStore(t testing.TB) *BoltStore {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStoreEnvAndHistory(t *testing.T) {
	s := openTestStore(t)
	if _, ok, err := s.Env("prod"); err != nil || ok {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	rec := EnvRecord{Name: "prod", Applied: sources.Revision{Commit: "abc"}, Quarantined: []string{"bad"}}
	if err := s.PutEnv(rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Env("prod")
	if err != nil || !ok || got.Applied.Commit != "abc" || !got.IsQuarantined("bad") || got.IsQuarantined("abc") {
		t.Fatalf("Env = %+v ok=%v err=%v", got, ok, err)
	}
	for i, res := range []string{"success", "noop", "failed"} {
		id, err := s.AddRun(Run{Environment: "prod", Result: res, Changes: i})
		if err != nil || id != uint64(i+1) {
			t.Fatalf("AddRun: id=%d err=%v", id, err)
		}
	}
	runs, err := s.History("prod", 2)
	if err != nil || len(runs) != 2 || runs[0].Result != "failed" || runs[1].Result != "noop" {
		t.Fatalf("History(2) = %+v, %v", runs, err)
	}
	if runs, _ := s.History("prod", 0); len(runs) != 3 {
		t.Fatalf("History(0) has %d runs, want 3", len(runs))
	}
	if runs, _ := s.History("other", 5); len(runs) != 0 {
		t.Fatalf("History of unknown env = %+v", runs)
	}
}

func TestStoreJournalRoundTrip(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.RecordSnapshots("prod", []JournalEntry{{}}); err == nil {
		t.Fatal("RecordSnapshots without a journal succeeded")
	}
	h := config.Host{Name: "web-1", Root: "/x", Resources: []config.Resource{{Kind: "file", Name: "/a"}}}
	if err := s.BeginJournal(Journal{Environment: "prod", Hosts: []config.Host{h}, Revision: sources.Revision{Commit: "c2"}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/a", Spec: &config.FileSpec{Content: "new", Mode: "0644"}, Notify: []string{"service:app"}}
	other := config.Resource{Kind: "file", Name: "/etc/b", Spec: &config.FileSpec{Content: "b"}}
	first := targets.State{Present: true, Content: []byte("old")}
	// One host's batch: three snapshots in one transaction; the first is
	// applied, the second failed, the third never started.
	seqs, err := s.RecordSnapshots("prod", []JournalEntry{
		{Host: "web-1", Resource: res, Snapshot: first},
		{Host: "web-1", Resource: res, Snapshot: targets.State{Content: []byte("later")}},
		{Host: "web-1", Resource: other},
	})
	if err != nil || len(seqs) != 3 || seqs[0] >= seqs[1] || seqs[1] >= seqs[2] {
		t.Fatalf("RecordSnapshots = %v, %v", seqs, err)
	}
	if err := s.FinishEntries("prod", seqs[:1], seqs[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishEntries("prod", []uint64{99}, nil); err == nil {
		t.Fatal("FinishEntries of an unknown entry succeeded")
	}
	j, entries, err := s.OpenJournal("prod")
	if err != nil || j == nil {
		t.Fatalf("OpenJournal: %v %v", j, err)
	}
	if j.Revision.Commit != "c2" || len(j.Hosts) != 1 || j.Hosts[0].Root != "/x" || j.Hosts[0].Resources != nil {
		t.Fatalf("journal = %+v", j)
	}
	if len(entries) != 2 || !entries[0].Applied || entries[1].Applied {
		t.Fatalf("entries = %+v", entries)
	}
	spec, ok := entries[0].Resource.Spec.(*config.FileSpec)
	if !ok || spec.Content != "new" || entries[0].Resource.Notify[0] != "service:app" || string(entries[0].Snapshot.Content) != "old" {
		t.Fatalf("entry 0 = %+v spec %#v", entries[0], entries[0].Resource.Spec)
	}
	// The first snapshot of a resource is kept, later ones do not replace it.
	fm, ok, err := s.FirstManaged("prod", "web-1", "file:/etc/a")
	if err != nil || !ok || string(fm.Content) != "old" {
		t.Fatalf("FirstManaged = %+v %v %v", fm, ok, err)
	}
	if envs, _ := s.Journals(); len(envs) != 1 || envs[0] != "prod" {
		t.Fatalf("Journals = %v", envs)
	}
	if err := s.EndJournal("prod"); err != nil {
		t.Fatal(err)
	}
	if j, _, _ := s.OpenJournal("prod"); j != nil {
		t.Fatal("journal still open after EndJournal")
	}
	if err := s.ForgetFirstManaged("prod", "web-1", "file:/etc/a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.FirstManaged("prod", "web-1", "file:/etc/a"); ok {
		t.Fatal("first-managed state survived ForgetFirstManaged")
	}
}

func TestMarkDelivery(t *testing.T) {
	s := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	win := time.Minute
	steps := []struct {
		provider, id string
		at           time.Duration
		want         bool
	}{
		{"github", "d1", 0, false},
		{"github", "d1", 30 * time.Second, true},
		{"gitlab", "d1", 31 * time.Second, false}, // providers are separate
		{"github", "d2", 50 * time.Second, false},
		{"github", "d1", 2 * time.Minute, false}, // expired, pruned, seen anew
		{"github", "d1", 2*time.Minute + time.Second, true},
	}
	for _, st := range steps {
		seen, err := s.MarkDelivery(st.provider, []string{st.id}, t0.Add(st.at), win)
		if err != nil || seen != st.want {
			t.Fatalf("MarkDelivery(%s,%s,+%v) = %v, %v; want %v", st.provider, st.id, st.at, seen, err, st.want)
		}
	}
	if _, err := s.MarkDelivery("github", []string{""}, t0, win); err == nil {
		t.Fatal("empty id accepted")
	}
	if _, err := s.MarkDelivery("github", nil, t0, win); err == nil {
		t.Fatal("no key accepted")
	}
	// One known key makes the delivery a replay, and the other key of it is
	// recorded all the same.
	at := t0.Add(2*time.Minute + 2*time.Second)
	if seen, err := s.MarkDelivery("github", []string{"d1", "body-x"}, at, win); err != nil || !seen {
		t.Fatalf("known id with a new body: seen=%v err=%v", seen, err)
	}
	if seen, err := s.MarkDelivery("github", []string{"d9", "body-x"}, at.Add(time.Second), win); err != nil || !seen {
		t.Fatalf("new id with a recorded body: seen=%v err=%v", seen, err)
	}
}

// countDeliveries returns how many keys the store looks up and how many
// index entries it holds.
func countDeliveries(t *testing.T, s *BoltStore) (keys, index int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		index = tx.Bucket(bucketDeliveryExpiry).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s.deliveries.len(), index
}

// TestDeliveriesPrunedByExpiry: expired deliveries go, oldest first and a
// bounded number per request, and those still in the window stay; a key
// seen again after it expired keeps its new sighting.
func TestDeliveriesPrunedByExpiry(t *testing.T) {
	s := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	win := time.Hour
	const old = 3 * pruneDeliveries
	// Half of them expire at t0+win+30m; the rest are still in the window.
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range 2 * old {
			at := t0.Add(time.Duration(i/old) * time.Hour)
			if err := s.putDelivery(tx, "github", fmt.Sprint("k", i), at.UnixNano()+int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(win + 30*time.Minute)
	// k0 expired: it is new again, and its old index entry is pruned
	// without taking the new sighting with it.
	if seen, err := s.MarkDelivery("github", []string{"k0"}, now, win); err != nil || seen {
		t.Fatalf("expired k0: seen=%v err=%v", seen, err)
	}
	if keys, index := countDeliveries(t, s); keys != 2*old+1-pruneDeliveries || index != 2*old+1-pruneDeliveries {
		t.Fatalf("after one request: %d keys, %d index entries; want %d each (one bounded prune)", keys, index, 2*old+1-pruneDeliveries)
	}
	for i := range 3 {
		if seen, err := s.MarkDelivery("gitlab", []string{fmt.Sprint("n", i)}, now, win); err != nil || seen {
			t.Fatalf("new delivery: seen=%v err=%v", seen, err)
		}
	}
	// Every expired one is gone; the window's and the new ones remain.
	if keys, index := countDeliveries(t, s); keys != old+4 || index != old+4 {
		t.Fatalf("after the backlog: %d keys, %d index entries; want %d each", keys, index, old+4)
	}
	if seen, err := s.MarkDelivery("github", []string{"k0"}, now.Add(time.Minute), win); err != nil || !seen {
		t.Fatalf("k0 seen again: seen=%v err=%v", seen, err)
	}
	if seen, err := s.MarkDelivery("github", []string{fmt.Sprint("k", old)}, now.Add(time.Minute), win); err != nil || !seen {
		t.Fatalf("a delivery in the window: seen=%v err=%v", seen, err)
	}
}

// TestDeliveriesMigratedOnOpen: a store written when deliveries were kept
// by key (and before the expiry index existed) gets them indexed when
// opened, and the old bucket goes: they are replays within the window and
// expire after it.
func TestDeliveriesMigratedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDeliveries)
		if err != nil {
			return err
		}
		p, err := b.CreateBucketIfNotExists([]byte("github"))
		if err != nil {
			return err
		}
		for _, k := range []string{"old-id", "body-sha256:old"} {
			if err := p.Put([]byte(k), itob(uint64(t0.UnixNano()))); err != nil {
				return err
			}
		}
		return tx.DeleteBucket(bucketDeliveryExpiry)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if keys, index := countDeliveries(t, s); keys != 2 || index != 2 {
		t.Fatalf("reopened: %d keys, %d index entries; want 2 each", keys, index)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDeliveries) != nil {
			return errors.New("the old deliveries bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := s.MarkDelivery("github", []string{"new-id", "body-sha256:old"}, t0.Add(time.Minute), time.Hour); err != nil || !seen {
		t.Fatalf("a migrated body within the window: seen=%v, %v", seen, err)
	}
	if seen, err := s.MarkDelivery("github", []string{"old-id"}, t0.Add(2*time.Hour), time.Hour); err != nil || seen {
		t.Fatalf("a migrated id after the window: seen=%v, %v", seen, err)
	}
	// The request after the window pruned every entry before it; only the
	// re-seen old id remains.
	if keys, index := countDeliveries(t, s); keys != 1 || index != 1 {
		t.Fatalf("after the window: %d keys, %d index entries; want 1 each", keys, index)
	}
}

// TestDeliveriesSurviveReopen: the lookup is rebuilt from the index when
// the store opens again, so a replay is still refused after a restart.
func TestDeliveriesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if seen, err := s.MarkDelivery("github", []string{"d1", "body-1"}, t0, time.Hour); err != nil || seen {
		t.Fatal(seen, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seen, err := s.MarkDelivery("github", []string{"d2", "body-1"}, t0.Add(time.Minute), time.Hour); err != nil || !seen {
		t.Fatalf("a replayed body after reopening: seen=%v, %v", seen, err)
	}
	if seen, err := s.MarkDelivery("gitlab", []string{"d1"}, t0.Add(time.Minute), time.Hour); err != nil || seen {
		t.Fatalf("another provider's id: seen=%v, %v", seen, err)
	}
}

// TestMarkDeliveryConcurrent: of many requests carrying one new delivery
// at once, exactly one is taken as new.
func TestMarkDeliveryConcurrent(t *testing.T) {
	s := openTestStore(t)
	now := time.Now()
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen, err := s.MarkDelivery("github", []string{"same-id"}, now, time.Hour)
			if err != nil {
				t.Error(err)
			}
			if !seen {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d requests took the delivery as new, want 1", fresh.Load())
	}
}

// TestGroupCommit: calls queued while a transaction is being written are
// committed together, in the next transaction, each with its own result;
// when one of them fails, it fails alone and the others are committed.
func TestGroupCommit(t *testing.T) {
	s := openTestStore(t)
	for _, failing := range []int{-1, 3} {
		ids, errs := queuedCalls(t, s, 10, failing)
		for i := range ids {
			if i == failing {
				if errs[i] == nil {
					t.Errorf("failing call %d returned no error", i)
				}
				continue
			}
			if errs[i] != nil {
				t.Errorf("call %d: %v", i, errs[i])
			}
			if failing < 0 && ids[i] != ids[0] {
				t.Errorf("call %d committed in transaction %d, call 0 in %d: not one group", i, ids[i], ids[0])
			}
			_ = s.db.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketEnvs).Get(fmt.Appendf(nil, "k%d-%d", failing, i)) == nil {
					t.Errorf("call %d's write is missing", i)
				}
				return nil
			})
		}
	}
}

// queuedCalls holds the store's writer with one call, queues n more behind
// it (call failing returns an error), lets them go and returns the id of
// the transaction each committed in and its error.
func queuedCalls(t *testing.T, s *BoltStore, n, failing int) ([]int, []error) {
	t.Helper()
	release, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.group.update(func(*bolt.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	ids, errs := make([]int, n), make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.group.update(func(tx *bolt.Tx) error {
				ids[i] = tx.ID()
				if i == failing {
					return errors.New("this call fails")
				}
				return tx.Bucket(bucketEnvs).Put(fmt.Appendf(nil, "k%d-%d", failing, i), []byte("v"))
			})
		}()
	}
	eventually(t, "calls queued behind the held transaction", func() bool {
		s.group.mu.Lock()
		defer s.group.mu.Unlock()
		return len(s.group.queue) == n
	})
	close(release)
	wg.Wait()
	return ids, errs
}

func FuzzDecodeEntry(f *testing.F) {
	seed, err := encodeEntry(JournalEntry{Host: "h", Resource: config.Resource{Kind: "file", Name: "/a", Spec: &config.FileSpec{Content: "x"}},
		Snapshot: targets.State{Present: true, Content: []byte("old")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"resource":{"kind":"file","name":"/a","spec":"not an object"}}`))
	f.Add([]byte(`{"resource":{"kind":"nope","spec":{"x":1}},"applied":true}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		again, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		e2, err := decodeEntry(again)
		if err != nil || e2.Resource.ID() != e.Resource.ID() || e2.Host != e.Host || e2.Applied != e.Applied ||
			string(e2.Snapshot.Content) != string(e.Snapshot.Content) {
			t.Fatalf("round trip: %+v -> %+v (%v)", e, e2, err)
		}
	})
}

// eventually waits until cond holds, failing the test after 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
