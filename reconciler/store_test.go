package reconciler

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

func openTestStore(t testing.TB) *BoltStore {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "state.db"))
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
	for i, res := range []string{ResultSuccess, ResultNoop, ResultFailed} {
		id, err := s.AddRun(Run{Environment: "prod", Result: res, Changes: i})
		if err != nil || id != uint64(i+1) {
			t.Fatalf("AddRun: id=%d err=%v", id, err)
		}
	}
	runs, err := s.History("prod", 2)
	if err != nil || len(runs) != 2 || runs[0].Result != ResultFailed || runs[1].Result != ResultNoop {
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
	if _, err := s.RecordSnapshot("prod", JournalEntry{}); err == nil {
		t.Fatal("RecordSnapshot without a journal succeeded")
	}
	h := config.Host{Name: "web-1", Root: "/x", Resources: []config.Resource{{Kind: "file", Name: "/a"}}}
	if err := s.BeginJournal(Journal{Environment: "prod", Hosts: []config.Host{h}, Revision: sources.Revision{Commit: "c2"}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/a", Spec: &config.FileSpec{Content: "new", Mode: "0644"}, Notify: []string{"service:app"}}
	first := targets.State{Present: true, Content: []byte("old")}
	seq, err := s.RecordSnapshot("prod", JournalEntry{Host: "web-1", Resource: res, Snapshot: first})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkApplied("prod", seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordSnapshot("prod", JournalEntry{Host: "web-1", Resource: res, Snapshot: targets.State{Content: []byte("later")}}); err != nil {
		t.Fatal(err)
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
		seen, err := s.MarkDelivery(st.provider, st.id, t0.Add(st.at), win)
		if err != nil || seen != st.want {
			t.Fatalf("MarkDelivery(%s,%s,+%v) = %v, %v; want %v", st.provider, st.id, st.at, seen, err, st.want)
		}
	}
	if _, err := s.MarkDelivery("github", "", t0, win); err == nil {
		t.Fatal("empty id accepted")
	}
}

// FuzzDecodeEntry feeds the journal decoder what a damaged store could
// hold: it must fail cleanly, and what it accepts must survive a round trip.
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

func TestCompleteJournal(t *testing.T) {
	s := openTestStore(t)
	if err := s.BeginJournal(Journal{Environment: "prod"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJournal(EnvRecord{Name: "prod", Applied: sources.Revision{Commit: "c9"}}); err != nil {
		t.Fatal(err)
	}
	if j, _, _ := s.OpenJournal("prod"); j != nil {
		t.Fatal("journal open after CompleteJournal")
	}
	if rec, ok, _ := s.Env("prod"); !ok || rec.Applied.Commit != "c9" {
		t.Fatalf("record = %+v %v", rec, ok)
	}
}

// TestHistoryRetention: the store keeps the newest runs of each
// environment and drops the oldest, so the history cannot grow without end.
func TestHistoryRetention(t *testing.T) {
	s := openTestStore(t)
	s.keep = 3
	for i := 1; i <= 5; i++ {
		for _, env := range []string{"prod", "edge"} {
			if _, err := s.AddRun(Run{Environment: env, Result: ResultSuccess, Changes: i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, env := range []string{"prod", "edge"} {
		runs, err := s.History(env, 0)
		if err != nil || len(runs) != 3 {
			t.Fatalf("%s keeps %d runs (%v), want 3", env, len(runs), err)
		}
		for i, want := range []uint64{5, 4, 3} {
			if runs[i].ID != want || runs[i].Changes != int(want) {
				t.Errorf("%s run %d: id %d changes %d, want %d", env, i, runs[i].ID, runs[i].Changes, want)
			}
		}
	}
}
