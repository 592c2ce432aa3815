package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/config"
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
	seed, err := encodeEntry(JournalEntry{Host: "h", Resource: config.Resource{Kind: "file", Name: "/a", Spec: &targets.FileSpec{Content: "x"}},
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
