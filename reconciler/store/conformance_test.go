package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// opener opens a new, empty store of one implementation, keeping keep
// runs per environment (its default when 0); it is closed when t ends.
type opener func(t *testing.T, keep int) Store

// conformance is the suite every Store implementation passes: bbolt here,
// etcd in etcd_test.go (against a real etcd server).
var conformance = []struct {
	name string
	test func(*testing.T, opener)
}{
	{"EnvAndHistory", testEnvAndHistory},
	{"HistoryRetention", testHistoryRetention},
	{"UpdateRun", testUpdateRun},
	{"JournalRoundTrip", testJournalRoundTrip},
	{"JournalManyEntries", testJournalManyEntries},
	{"CompleteJournal", testCompleteJournal},
	{"SecretsSealed", testSecretsSealed},
	{"MarkDelivery", testMarkDelivery},
	{"MarkDeliveryConcurrent", testMarkDeliveryConcurrent},
}

func runConformance(t *testing.T, open opener) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) { c.test(t, open) })
	}
}

// TestBoltConformance runs the suite against the bbolt store.
func TestBoltConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, keep int) Store {
		s := openTestStore(t)
		if keep > 0 {
			s.keep = uint64(keep)
		}
		return s
	})
}

func testEnvAndHistory(t *testing.T, open opener) {
	s := open(t, 0)
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

func testJournalRoundTrip(t *testing.T, open opener) {
	s := open(t, 0)
	if _, err := s.RecordSnapshots("prod", []JournalEntry{{}}); err == nil {
		t.Fatal("RecordSnapshots without a journal succeeded")
	}
	h := config.Host{Name: "web-1", Root: "/x", Resources: []config.Resource{{Kind: "file", Name: "/a"}}}
	if err := s.BeginJournal(Journal{Environment: "prod", Hosts: []config.Host{h}, Revision: sources.Revision{Commit: "c2"}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/a", Spec: &targets.FileSpec{Content: "new", Mode: "0644"}, Notify: []string{"service:app"}}
	other := config.Resource{Kind: "file", Name: "/etc/b", Spec: &targets.FileSpec{Content: "b"}}
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
	spec, ok := entries[0].Resource.Spec.(*targets.FileSpec)
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

func testMarkDelivery(t *testing.T, open opener) {
	s := open(t, 0)
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

// testMarkDeliveryConcurrent: of many requests carrying one new delivery
// at once, exactly one is taken as new.
func testMarkDeliveryConcurrent(t *testing.T, open opener) {
	s := open(t, 0)
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

// testHistoryRetention: past keep runs, the oldest go, one per new run,
// and ids keep growing.
func testHistoryRetention(t *testing.T, open opener) {
	s := open(t, 3)
	for i := 1; i <= 7; i++ {
		if id, err := s.AddRun(Run{Environment: "prod", Result: fmt.Sprint("r", i)}); err != nil || id != uint64(i) {
			t.Fatalf("AddRun %d: id=%d err=%v", i, id, err)
		}
	}
	runs, err := s.History("prod", 0)
	if err != nil || len(runs) != 3 || runs[0].ID != 7 || runs[2].ID != 5 || runs[2].Result != "r5" {
		t.Fatalf("History after 7 runs with keep 3 = %+v, %v", runs, err)
	}
}

// testUpdateRun: a run in the history is replaced; one that fell out is not
// written back.
func testUpdateRun(t *testing.T, open opener) {
	s := open(t, 2)
	for range 3 {
		if _, err := s.AddRun(Run{Environment: "prod", Result: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.UpdateRun(Run{ID: 3, Environment: "prod", Result: "success"}); err != nil || !ok {
		t.Fatalf("UpdateRun of run 3: ok=%v err=%v", ok, err)
	}
	if ok, err := s.UpdateRun(Run{ID: 1, Environment: "prod", Result: "success"}); err != nil || ok {
		t.Fatalf("UpdateRun of a pruned run: ok=%v err=%v", ok, err)
	}
	runs, _ := s.History("prod", 0)
	if len(runs) != 2 || runs[0].Result != "success" || runs[1].Result != "running" {
		t.Fatalf("History = %+v", runs)
	}
}

// testJournalManyEntries: a batch larger than one etcd transaction takes
// is recorded whole, in order, with one first-managed state per resource.
func testJournalManyEntries(t *testing.T, open opener) {
	s := open(t, 0)
	if err := s.BeginJournal(Journal{Environment: "prod"}); err != nil {
		t.Fatal(err)
	}
	const n = 260
	entries := make([]JournalEntry, n)
	for i := range entries {
		entries[i] = JournalEntry{Host: "web-1", Resource: config.Resource{Kind: "file", Name: fmt.Sprint("/etc/f", i%200),
			Spec: &targets.FileSpec{Content: fmt.Sprint("new ", i)}}, Snapshot: targets.State{Content: []byte(fmt.Sprint("old ", i))}}
	}
	seqs, err := s.RecordSnapshots("prod", entries)
	if err != nil || len(seqs) != n {
		t.Fatalf("RecordSnapshots(%d) = %d seqs, %v", n, len(seqs), err)
	}
	for i := 1; i < n; i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs not increasing at %d: %v", i, seqs[i-1:i+1])
		}
	}
	if err := s.FinishEntries("prod", seqs[:150], seqs[250:]); err != nil {
		t.Fatal(err)
	}
	_, got, err := s.OpenJournal("prod")
	if err != nil || len(got) != 250 {
		t.Fatalf("OpenJournal: %d entries, %v; want 250", len(got), err)
	}
	for i, e := range got {
		if e.Applied != (i < 150) || string(e.Snapshot.Content) != fmt.Sprint("old ", i) {
			t.Fatalf("entry %d = applied %v snapshot %q", i, e.Applied, e.Snapshot.Content)
		}
	}
	// /etc/f7 was recorded at 7 and again at 207: the first stays.
	fm, ok, err := s.FirstManaged("prod", "web-1", "file:/etc/f7")
	if err != nil || !ok || string(fm.Content) != "old 7" {
		t.Fatalf("FirstManaged(/etc/f7) = %q %v %v", fm.Content, ok, err)
	}
}

// testCompleteJournal: completing a rollout closes its journal, writes the
// record and appends its run to history together; a new journal replaces
// an older one's entries.
func testCompleteJournal(t *testing.T, open opener) {
	s := open(t, 0)
	for _, env := range []string{"prod", "prod-eu"} {
		if err := s.BeginJournal(Journal{Environment: env, Revision: sources.Revision{Commit: "c1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RecordSnapshots("prod", []JournalEntry{{Host: "h", Resource: config.Resource{Kind: "file", Name: "/a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginJournal(Journal{Environment: "prod", Revision: sources.Revision{Commit: "c2"}}); err != nil {
		t.Fatal(err)
	}
	j, entries, err := s.OpenJournal("prod")
	if err != nil || j == nil || j.Revision.Commit != "c2" || len(entries) != 0 {
		t.Fatalf("after a second BeginJournal: %+v %d entries %v", j, len(entries), err)
	}
	if _, err := s.AddRun(Run{Environment: "prod", Revision: sources.Revision{Commit: "c1"}, Result: "success"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.CompleteJournal(EnvRecord{Name: "prod", Applied: sources.Revision{Commit: "c2"}},
		Run{Environment: "prod", Revision: sources.Revision{Commit: "c2"}, Result: "success", Changes: 1})
	if err != nil || id != 2 {
		t.Fatalf("CompleteJournal = %d, %v; want run 2", id, err)
	}
	if j, _, _ := s.OpenJournal("prod"); j != nil {
		t.Fatal("journal still open after CompleteJournal")
	}
	if rec, ok, err := s.Env("prod"); err != nil || !ok || rec.Applied.Commit != "c2" {
		t.Fatalf("record after CompleteJournal = %+v %v %v", rec, ok, err)
	}
	if runs, err := s.History("prod", 0); err != nil || len(runs) != 2 || runs[0].ID != 2 || runs[0].Revision.Commit != "c2" || runs[0].Changes != 1 {
		t.Fatalf("history after CompleteJournal = %+v, %v", runs, err)
	}
	// prod-eu's journal (a name prod is a prefix of) is untouched.
	if envs, err := s.Journals(); err != nil || len(envs) != 1 || envs[0] != "prod-eu" {
		t.Fatalf("Journals = %v, %v", envs, err)
	}
	recs, err := s.Envs()
	if err != nil || len(recs) != 1 || recs[0].Name != "prod" {
		t.Fatalf("Envs = %+v, %v", recs, err)
	}
}

// testSecretsSealed: the journal entry and first-managed state of a secret
// resource come back whole.
func testSecretsSealed(t *testing.T, open opener) {
	s := open(t, 0)
	if err := s.BeginJournal(Journal{Environment: "prod"}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/token", Spec: &targets.FileSpec{Content: "new-secret", Secret: true}}
	if _, err := s.RecordSnapshots("prod", []JournalEntry{{Host: "h", Resource: res, Snapshot: targets.State{Present: true, Content: []byte("old-secret")}}}); err != nil {
		t.Fatal(err)
	}
	_, entries, err := s.OpenJournal("prod")
	if err != nil || len(entries) != 1 {
		t.Fatalf("OpenJournal: %d entries, %v", len(entries), err)
	}
	if spec, ok := entries[0].Resource.Spec.(*targets.FileSpec); !ok || spec.Content != "new-secret" || string(entries[0].Snapshot.Content) != "old-secret" {
		t.Fatalf("sealed entry came back as %+v", entries[0])
	}
	if fm, ok, err := s.FirstManaged("prod", "h", res.ID()); err != nil || !ok || string(fm.Content) != "old-secret" {
		t.Fatalf("FirstManaged = %q %v %v", fm.Content, ok, err)
	}
}
