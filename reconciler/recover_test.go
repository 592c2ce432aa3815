package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/need"
)

func TestInterruptedRolloutRecovered(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := etc + fileRes("/etc/a.conf", "new")
	for _, h := range []string{"h1", "h2"} {
		f.writeHostFile(h, "/etc/a.conf", "old")
	}
	// The daemon is stopped while the first host is being verified.
	f.ver.gate = func(string, string) { cancel() }
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil, res,
		"verify:\n  - command: \"true\"\n")})
	runs, _ := f.r.ApplyRevision(ctx, rev)
	if len(runs) != 1 || runs[0].Result != status.ResultFailed || !strings.Contains(runs[0].Error, "interrupted") {
		t.Fatalf("runs = %+v", runs)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "new" {
		t.Fatalf("h1 before recovery = %q (the test needs a half-done rollout)", got)
	}
	if j, entries, _ := f.store.OpenJournal("prod"); j == nil || len(entries) != 1 || !entries[0].Applied {
		t.Fatalf("journal = %+v %+v", j, entries)
	}
	// A fresh reconciler on the same store, as after a restart.
	f.ver.gate = nil
	r2 := f.restarted()
	if err := r2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if got := f.hostFile(h, "/etc/a.conf"); got != "old" {
			t.Errorf("%s after recovery = %q", h, got)
		}
	}
	// The rollout's run, recorded as failed when the daemon stopped, now
	// says it was rolled back: one run, not a second one for the recovery.
	hist, _ := r2.History("prod", 0)
	if len(hist) != 1 || hist[0].Trigger != status.TriggerRevision || hist[0].Result != status.ResultRolledBack ||
		!strings.Contains(hist[0].Error, "this rollout was interrupted") {
		t.Fatalf("history = %+v", hist)
	}
	if n := testutil.ToFloat64(r2.m.rollbacks.WithLabelValues("prod", "interrupted")); n != 1 {
		t.Errorf("rollbacks{interrupted} = %v", n)
	}
	st, _ := r2.Environment("prod")
	if st.State != status.StateRolledBack || len(st.Quarantined) != 0 {
		t.Errorf("status = %+v", st)
	}
}

func TestTempCleanupScript(t *testing.T) {
	got := tempCleanup("/sandbox/h1", []store.JournalEntry{
		{Resource: configResource("file", "/etc/it's.conf")},
		{Resource: configResource("file", "/etc/it's.conf")},
		{Resource: configResource("package", "nginx")},
	})
	want := `for f in '/sandbox/h1/etc/'/'.it'\''s.conf.driftless-'*; do if [ -f "$f" ]; then rm -f -- "$f"; fi; done` + "\n"
	if got != want {
		t.Fatalf("script =\n%s\nwant\n%s", got, want)
	}
}

func configResource(kind, name string) config.Resource {
	return config.Resource{Kind: kind, Name: name}
}

func TestRecoveryBlockedWhileHostUnreachable(t *testing.T) {
	f := newFixture(t)
	port := closedPort(t)
	far := config.Host{Name: "far", Address: "127.0.0.1", Port: atoi(t, port), Transport: "ssh"}
	if err := f.store.BeginJournal(store.Journal{Environment: "prod", Hosts: []config.Host{far}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/a.conf", Spec: &targets.FileSpec{Content: "new"}}
	if _, err := f.store.RecordSnapshots("prod", []store.JournalEntry{{Host: "far", Resource: res}}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Recover(context.Background()); err == nil || !strings.Contains(err.Error(), "connect to far") {
		t.Fatalf("Recover = %v", err)
	}
	if st, _ := f.r.Environment("prod"); st.State != status.StateBlocked || !strings.Contains(st.LastError, "unfinished") ||
		len(st.Hosts) != 1 || st.Hosts[0].Up {
		t.Fatalf("status = %+v", st)
	}
	if v := testutil.ToFloat64(f.r.m.blocked.WithLabelValues("prod")); v != 1 {
		t.Errorf("driftless_environment_blocked = %v", v)
	}
	if v := testutil.ToFloat64(f.r.m.hostUp.WithLabelValues("prod", "far")); v != 0 {
		t.Errorf("driftless_host_up{host=far} = %v", v)
	}
	// Nothing else happens to the environment until the recovery succeeds.
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err == nil || !strings.Contains(err.Error(), "recover rollout") {
		t.Fatalf("apply while blocked = %v", err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "<absent>" {
		t.Fatalf("applied while an interrupted rollout was pending: %q", got)
	}
	if j, _, _ := f.store.OpenJournal("prod"); j == nil {
		t.Fatal("the journal of the unrecovered rollout was dropped")
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIncompleteRollbackFinishedByRecovery(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil || os.Geteuid() != 0 {
		need.Missing(t, "needs root and chattr to make a folder immutable")
	}
	f := newFixture(t)
	ctx := context.Background()
	etcDir := filepath.Join(f.sandbox, "h1", "etc")
	chattr := func(flag string) error {
		out, err := exec.Command("chattr", flag, etcDir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr %s: %v: %s", flag, err, out)
		}
		return nil
	}
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "one"), "")})
	if _, err := f.r.ApplyRevision(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	// While rev2 is verified, its folder becomes immutable: the check
	// fails and the restore of a.conf fails too.
	f.ver.gate = func(string, string) {
		if err := chattr("+i"); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { _ = chattr("-i") })
	rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "two"),
		"verify:\n  - command: \"false\"\n")})
	runs, _ := f.r.ApplyRevision(ctx, rev2)
	if runs[0].Result != status.ResultRolledBack || !strings.Contains(runs[0].Error, "restore file:/etc/a.conf") {
		need.Missing(t, "the immutable folder did not make the restore fail here: %+v", runs[0])
	}
	if j, _, _ := f.store.OpenJournal("prod"); j == nil {
		t.Fatal("journal closed although the rollback is incomplete")
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "two" {
		t.Fatalf("a.conf = %q", got)
	}
	f.ver.gate = nil
	if err := chattr("-i"); err != nil {
		t.Fatal(err)
	}
	// The next run of the environment first finishes the rollback.
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "one" {
		t.Fatalf("a.conf after recovery = %q", got)
	}
	if j, _, _ := f.store.OpenJournal("prod"); j != nil {
		t.Fatal("journal still open")
	}
	// History says what happened, once: the rollout's run was rolled back,
	// and its rollback finished later; no run claims the daemon stopped.
	hist, _ := f.r.History("prod", 0)
	var triggers []string
	for _, r := range hist {
		triggers = append(triggers, r.Trigger+"/"+r.Result)
		if strings.Contains(r.Error, "daemon stopped") {
			t.Errorf("run %d says the daemon stopped: %s", r.ID, r.Error)
		}
	}
	if strings.Join(triggers, " ") != "sync/noop revision/rolled_back revision/success" || !strings.Contains(hist[1].Error, "rollback of "+rev2.Short()+" finished") {
		t.Fatalf("history = %v; rolled back run: %q", triggers, hist[1].Error)
	}
	if n := testutil.ToFloat64(f.r.m.reconcileTotal.WithLabelValues("prod", status.ResultRolledBack)); n != 1 {
		t.Errorf("reconcile_total{rolled_back} = %v, want 1", n)
	}
	for _, reason := range []string{"apply", "verify", "manual", "interrupted"} {
		want := 0.0
		if reason == "verify" {
			want = 1
		}
		if n := testutil.ToFloat64(f.r.m.rollbacks.WithLabelValues("prod", reason)); n != want {
			t.Errorf("rollbacks_total{reason=%s} = %v, want %v", reason, n, want)
		}
	}
}

// cutStore is a real store whose next CompleteJournal or FinishEntries
// calls fail, as a store cut off (etcd unreachable) fails them: nothing
// is written.
type cutStore struct {
	store.Store
	mu               sync.Mutex
	complete, finish int
}

func (s *cutStore) cut(n *int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *n == 0 {
		return false
	}
	*n--
	return true
}

func (s *cutStore) CompleteJournal(rec store.EnvRecord, run store.Run) (uint64, error) {
	if s.cut(&s.complete) {
		return 0, errors.New("store unreachable")
	}
	return s.Store.CompleteJournal(rec, run)
}

func (s *cutStore) FinishEntries(env string, applied, unstarted []uint64) error {
	if s.cut(&s.finish) {
		return errors.New("store unreachable")
	}
	return s.Store.FinishEntries(env, applied, unstarted)
}

// TestRolloutEndNotRecorded: a rollout whose journal cannot be written
// after its hosts changed (the store cut off when the batch's entries are
// marked, or when the rollout's end is recorded) is interrupted, not
// failed: nothing is rolled back or quarantined then, the store never
// says the revision is applied while its journal is open, and the
// recovery rolls the hosts back and records the rollout (history names
// the revision the hosts are on), after which the revision rolls out
// again. Before the end was one transaction with the run, a lost end left
// the run recorded as a success and the record naming the revision, and
// the recovery then put the hosts back under a record that still named it;
// a lost entry mark failed the host and quarantined a good revision.
func TestRolloutEndNotRecorded(t *testing.T) {
	for _, c := range []struct {
		name             string
		complete, finish int
	}{
		{"end", 1, 0},
		{"entries", 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := &cutStore{complete: c.complete, finish: c.finish}
			f := newFixture(t, func(o *Options) { cs.Store = o.Store; o.Store = cs })
			ctx := context.Background()
			res := etc + fileRes("/etc/a.conf", "new")
			f.writeHostFile("h1", "/etc/a.conf", "old")
			rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
			runs, _ := f.r.ApplyRevision(ctx, rev)
			if len(runs) != 1 || runs[0].Result != status.ResultFailed || runs[0].ErrorClass != status.ErrorInterrupted {
				t.Fatalf("run whose journal could not be written = %+v", runs)
			}
			if got := f.hostFile("h1", "/etc/a.conf"); got != "new" {
				t.Fatalf("h1 = %q: the interrupted rollout was rolled back at once", got)
			}
			if j, _, _ := f.store.OpenJournal("prod"); j == nil {
				t.Fatal("journal closed though the rollout's end was not recorded")
			}
			rec, _, _ := f.store.Env("prod")
			if rec.Applied.Commit == rev.Commit || rec.IsQuarantined(rev.Commit) {
				t.Fatalf("record %+v: applied or quarantined while the rollout's journal is open", rec)
			}
			if err := f.r.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			rec, _, _ = f.store.Env("prod")
			if got := f.hostFile("h1", "/etc/a.conf"); got != "old" || rec.Applied.Commit == rev.Commit || rec.IsQuarantined(rev.Commit) {
				t.Fatalf("after recovery: h1 = %q, record %+v", got, rec)
			}
			hist, _ := f.r.History("prod", 0)
			if len(hist) != 1 || hist[0].Result != status.ResultRolledBack || !strings.Contains(hist[0].Error, "it was rolled back at the next pass") {
				t.Fatalf("history after recovery = %+v", hist)
			}
			runs, _ = f.r.ApplyRevision(ctx, rev)
			rec, _, _ = f.store.Env("prod")
			if len(runs) != 1 || runs[0].Result != status.ResultSuccess || f.hostFile("h1", "/etc/a.conf") != "new" || rec.Applied.Commit != rev.Commit {
				t.Fatalf("rolled out again: %+v, record %+v", runs, rec)
			}
			if hist, _ = f.r.History("prod", 0); len(hist) != 2 || hist[0].ID != runs[0].ID {
				t.Fatalf("history after the second rollout = %+v", hist)
			}
		})
	}
}

// endRefusingStore is a real store whose CompleteJournal fails its first
// fails calls with err, writing nothing, and counts the calls; its fenced
// views are itself (the bolt store's are too).
type endRefusingStore struct {
	store.Store
	err   error
	fails int32
	calls atomic.Int32
}

func (s *endRefusingStore) Fenced(store.Fence) store.Store { return s }

func (s *endRefusingStore) CompleteJournal(rec store.EnvRecord, run store.Run) (uint64, error) {
	if s.calls.Add(1) <= s.fails {
		return 0, s.err
	}
	return s.Store.CompleteJournal(rec, run)
}

// TestRolloutEndRefusedForGood: in a cluster, a rollout's end the store
// refuses for good (etcd's space quota exceeded) is not tried again: the
// rollout is interrupted at once, its journal left open for the recovery,
// the refusal counted and shown in the environment's status; an end that
// fails for a while (etcd unreachable) is tried again until it goes
// through, and recorded once. Before, both were tried every 200 ms while
// the replica owned the environment: a refusal for good without end (here
// until the store let the tenth try through).
func TestRolloutEndRefusedForGood(t *testing.T) {
	for _, c := range []struct {
		name      string
		err       error
		fails     int32
		refused   bool
		wantCalls int32
	}{
		{"refused", fmt.Errorf("%w: etcdserver: mvcc: database space exceeded", store.ErrRefused), 10, true, 1},
		{"unreachable", errors.New("store unreachable"), 2, false, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := &endRefusingStore{err: c.err, fails: c.fails}
			f := newFixture(t, func(o *Options) {
				rs.Store, o.Store = o.Store, rs
				o.Ownership = lostOwnership{new(atomic.Bool)}
			})
			f.writeHostFile("h1", "/etc/a.conf", "old")
			rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "new"), "")})
			runs, _ := f.r.ApplyRevision(context.Background(), rev)
			if n := rs.calls.Load(); n != c.wantCalls {
				t.Errorf("the rollout's end was tried %d time(s), want %d", n, c.wantCalls)
			}
			if len(runs) != 1 {
				t.Fatalf("%d runs", len(runs))
			}
			j, _, _ := f.store.OpenJournal("prod")
			hist, _ := f.r.History("prod", 0)
			refusals := testutil.ToFloat64(f.r.m.endRefused.WithLabelValues("prod"))
			if !c.refused {
				if runs[0].Result != status.ResultSuccess || j != nil || len(hist) != 1 || refusals != 0 {
					t.Fatalf("end tried again: run %s (%s), journal open %v, %d run(s) in history, refusals %v", runs[0].Result, runs[0].Error, j != nil, len(hist), refusals)
				}
				return
			}
			if runs[0].ErrorClass != status.ErrorInterrupted || j == nil || len(hist) != 0 {
				t.Fatalf("end refused: run %s (%s), journal open %v, %d run(s) in history; want interrupted, the journal open, nothing recorded",
					runs[0].Result, runs[0].ErrorClass, j != nil, len(hist))
			}
			if refusals != 1 {
				t.Errorf("driftless_rollout_end_refused_total = %v, want 1", refusals)
			}
			if st, _ := f.r.Environment("prod"); !strings.Contains(st.LastError, "database space exceeded") {
				t.Errorf("status does not say why: %q", st.LastError)
			}
		})
	}
}
