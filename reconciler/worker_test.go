package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// eventually polls cond until it holds or 10 s have passed.
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

// runDaemon starts Run and returns the revision channel; the test's end
// stops it and waits for it.
func runDaemon(t *testing.T, f *fixture) chan<- sources.Revision {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, revs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return revs
}

// holdFirstVerify holds the first verification of env ("" for any
// environment) until release is closed; entered is closed once it waits.
func holdFirstVerify(f *fixture, env string) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.ver.gate = func(e, _ string) {
		if env == "" || e == env {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	}
	return entered, release
}

func (f *fixture) applied(env string) string {
	st, _ := f.r.Environment(env)
	return st.Applied
}

func TestRunCoalescesNewestWins(t *testing.T) {
	f := newFixture(t)
	entered, release := holdFirstVerify(f, "prod")
	revs := runDaemon(t, f)
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
			etc+fileRes("/etc/app.conf", content), "verify:\n  - command: \"true\"\n")})
	}
	rev1 := mk("v1")
	revs <- rev1
	<-entered // the first rollout is held in its verification
	var last sources.Revision
	for _, c := range []string{"v2", "v3", "v4"} {
		last = mk(c)
		revs <- last
	}
	// Another environment goes on while prod is held: environments run in
	// parallel. Its receipt also proves prod's last revision was dispatched.
	other := f.revision(map[string]string{"environments/other.yaml": envYAML("other", []string{"o1"}, nil, etc+fileRes("/etc/o.conf", "o"), "")})
	other.Source = "other-repo" // from the same source, it would retire prod
	revs <- other
	eventually(t, "other is applied", func() bool { return f.applied("other") == other.Commit })
	if f.applied("prod") != "" {
		t.Fatal("prod finished while held")
	}
	close(release)
	eventually(t, "the newest revision is applied", func() bool { return f.applied("prod") == last.Commit })
	hist, err := f.r.History("prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	var commits []string
	for _, r := range hist {
		commits = append(commits, r.Revision.Commit)
	}
	if len(hist) != 2 || commits[0] != last.Commit || commits[1] != rev1.Commit {
		t.Fatalf("history commits = %v; want the newest then the first (v2, v3 coalesced away)", commits)
	}
	if got := f.hostFile("h1", "/etc/app.conf"); got != "v4" {
		t.Fatalf("app.conf = %q", got)
	}
}

func TestRunQuarantineDriftAndNewerCommit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DriftInterval = 30 * time.Millisecond })
	revs := runDaemon(t, f)
	check := "verify:\n  - name: marker\n    command: \"! grep -q broken $DRIFTLESS_ROOT/etc/app.conf\"\n"
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil,
			etc+fileRes("/etc/app.conf", content), check)})
	}
	rev1 := mk("good-1")
	revs <- rev1
	eventually(t, "rev1 applied", func() bool { return f.applied("prod") == rev1.Commit })

	rev2 := mk("broken")
	revs <- rev2
	eventually(t, "rev2 rolled back", func() bool {
		st, _ := f.r.Environment("prod")
		return st.State == status.StateRolledBack || st.LastResult == status.ResultRolledBack
	})
	// Drift passes go on, enforcing rev1; rev2 is not tried again.
	noops := func() float64 {
		return testutil.ToFloat64(f.r.m.reconcileTotal.WithLabelValues("prod", status.ResultNoop))
	}
	n := noops()
	eventually(t, "two drift passes", func() bool { return noops() >= n+2 })
	f.writeHostFile("h2", "/etc/app.conf", "edited by hand")
	eventually(t, "drift corrected", func() bool { return f.hostFile("h2", "/etc/app.conf") == "good-1" })
	// The same quarantined commit again (a restart of its source) is skipped.
	revs <- rev2
	n = noops()
	eventually(t, "another drift pass", func() bool { return noops() >= n+2 })
	for _, h := range []string{"h1", "h2"} {
		if got := f.hostFile(h, "/etc/app.conf"); got != "good-1" {
			t.Fatalf("%s: %q after quarantine", h, got)
		}
	}
	hist, _ := f.r.History("prod", 0)
	rolled := 0
	for _, r := range hist {
		if r.Revision.Commit == rev2.Commit {
			rolled++
		}
	}
	if rolled != 1 {
		t.Fatalf("quarantined commit ran %d times", rolled)
	}
	rev3 := mk("good-3")
	revs <- rev3
	eventually(t, "rev3 applied", func() bool { return f.applied("prod") == rev3.Commit })
	if got := f.hostFile("h1", "/etc/app.conf"); got != "good-3" {
		t.Fatalf("after rev3: %q", got)
	}
}

func TestRunInvalidRevisionAndPreview(t *testing.T) {
	f := newFixture(t)
	revs := runDaemon(t, f)
	good := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "1"), "")})
	revs <- good
	eventually(t, "applied", func() bool { return f.applied("prod") == good.Commit })
	if v := testutil.ToFloat64(f.r.m.configOK); v != 1 {
		t.Fatalf("config_last_reload_successful = %v", v)
	}
	bad := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "2"), "") + "nonsense: [\n"})
	revs <- bad
	eventually(t, "reload marked failed", func() bool { return testutil.ToFloat64(f.r.m.configOK) == 0 })

	pr := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "3"), "")})
	pr.Preview, pr.PullRequest = true, 42
	revs <- pr
	var rep status.Report
	eventually(t, "preview reported", func() bool { var ok bool; rep, ok = f.rep.find(status.StatusPreview); return ok })
	if rep.PullRequest != 42 || rep.Plan == nil || len(rep.Plan.Hosts) != 1 || !strings.Contains(rep.Description, "1 change(s)") {
		t.Fatalf("preview report = %+v", rep)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "1" {
		t.Fatalf("a.conf = %q: an invalid or preview revision was applied", got)
	}
	if st, _ := f.r.Environment("prod"); st.Applied != good.Commit {
		t.Fatalf("applied = %s", st.Applied)
	}
}

func TestPreviewsOfDifferentPullRequestsAreAllReported(t *testing.T) {
	f := newFixture(t)
	entered, release := holdFirstVerify(f, "")
	revs := runDaemon(t, f)
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
			etc+fileRes("/etc/a.conf", content), "verify:\n  - command: \"true\"\n")})
	}
	revs <- mk("main")
	<-entered
	// While the environment is busy, two pull requests are pushed, one twice.
	var newest7 string
	for _, p := range []struct {
		pr      int
		content string
	}{{7, "pr7-a"}, {8, "pr8"}, {7, "pr7-b"}} {
		rev := mk(p.content)
		rev.Preview, rev.PullRequest = true, p.pr
		if p.pr == 7 {
			newest7 = rev.Commit
		}
		revs <- rev
	}
	other := f.revision(map[string]string{"environments/other.yaml": envYAML("other", []string{"o1"}, nil, etc, "")})
	// From the same source, it would retire prod. Its receipt proves the
	// previews were dispatched.
	other.Source = "other-repo"
	revs <- other
	close(release)
	eventually(t, "two previews reported", func() bool {
		n := 0
		for _, s := range f.rep.statuses() {
			if s == "prod/preview" {
				n++
			}
		}
		return n >= 2
	})
	_ = f.r.Close()
	f.rep.mu.Lock()
	defer f.rep.mu.Unlock()
	prs := map[int]int{}
	for _, r := range f.rep.reports {
		if r.Status == status.StatusPreview {
			prs[r.PullRequest]++
			if r.PullRequest == 7 && r.Commit != newest7 {
				t.Errorf("pull request 7 previewed at %s, not its newest commit", r.Commit)
			}
		}
	}
	if len(prs) != 2 || prs[7] != 1 || prs[8] != 1 {
		t.Fatalf("previews by pull request = %v; want one each for 7 (its newest) and 8", prs)
	}
}

// journalReads counts the store's journal reads: every pass of a worker
// starts with one (its recovery).
type journalReads struct {
	store.Store
	n atomic.Int64
}

func (s *journalReads) OpenJournal(env string) (*store.Journal, []store.JournalEntry, error) {
	s.n.Add(1)
	return s.Store.OpenJournal(env)
}

// TestWakeLeavesUngatedEnvironmentsAlone: the end of each rollout wakes
// the other environments to look at their gates again; one without gates
// has nothing to look at and reads nothing from the store for it. (Each
// wake was a pass reading the journal: with 20 environments one revision
// cost hundreds of reads, each an etcd request in cluster mode.)
func TestWakeLeavesUngatedEnvironmentsAlone(t *testing.T) {
	reads := &journalReads{}
	f := newFixture(t, func(o *Options) { reads.Store, o.Store = o.Store, reads })
	revs := runDaemon(t, f)
	const n = 20
	names, files := manyEnvs(n)
	for _, content := range []string{"v1\n", "v2\n"} {
		for _, name := range names {
			files["environments/"+name+".yaml"] = envYAML(name, []string{name + "-h"}, nil, etc+fileRes("/etc/app.conf", content), "")
		}
		rev := f.revision(files)
		revs <- rev
		eventually(t, "every environment applied "+rev.Short(), func() bool {
			for _, name := range names {
				if f.applied(name) != rev.Commit {
					return false
				}
			}
			return true
		})
	}
	// The wakes of the last rollouts' ends are served.
	time.Sleep(500 * time.Millisecond)
	// One read per pass: two revisions, n environments.
	if got := reads.n.Load(); got > 2*n {
		t.Errorf("%d journal reads for %d passes: environments without gates passed again when woken", got, 2*n)
	}
}

// downDialer fails its next fail dials, as to a host that is down, and
// counts them; then it dials as testDialer.
type downDialer struct{ fail, failed *atomic.Int32 }

func (d downDialer) Transport(ctx context.Context, h *config.Host) (targets.Transport, error) {
	if d.fail.Add(-1) >= 0 {
		d.failed.Add(1)
		return nil, fmt.Errorf("dial %s: host down", h.Name)
	}
	return testDialer{}.Transport(ctx, h)
}

// TestWakeRecoversOpenJournal: an environment without gates whose journal
// is open (its rollout's end was not recorded, and its recovery could not
// reach the host) tries its recovery again when woken, as it did before
// wakes left environments without gates alone; it waited for its next
// drift pass (minutes) then.
func TestWakeRecoversOpenJournal(t *testing.T) {
	cs := &cutStore{complete: 1}
	fail, failed := new(atomic.Int32), new(atomic.Int32)
	f := newFixture(t, func(o *Options) {
		cs.Store, o.Store = o.Store, cs
		o.Dialer = downDialer{fail, failed}
	})
	f.writeHostFile("h1", "/etc/a.conf", "old")
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "new"), "")})
	if runs, _ := f.r.ApplyRevision(context.Background(), rev); len(runs) != 1 || runs[0].ErrorClass != status.ErrorInterrupted {
		t.Fatalf("rollout whose end was not recorded: %+v", runs)
	}
	// The host is down for the recovery at start and for the pass of the
	// revision the source sends again.
	fail.Store(2)
	revs := runDaemon(t, f)
	revs <- rev
	eventually(t, "both recoveries failed", func() bool { return failed.Load() == 2 })
	if j, _, _ := f.store.OpenJournal("prod"); j == nil || f.hostFile("h1", "/etc/a.conf") != "new" {
		t.Fatal("recovered while the host was down")
	}
	// Another environment's rollout ended.
	f.r.wakeOthers("staging")
	// It recovers (the interrupted rollout rolled back), then rolls the
	// revision that waited for the recovery out again, without waiting
	// for the drift tick or the interrupted run's backoff.
	eventually(t, "the woken environment recovered and rolled the waiting revision out", func() bool {
		j, _, _ := f.store.OpenJournal("prod")
		hist, _ := f.r.History("prod", 0)
		return j == nil && slices.ContainsFunc(hist, func(r store.Run) bool { return r.Result == status.ResultRolledBack }) &&
			f.applied("prod") == rev.Commit && f.hostFile("h1", "/etc/a.conf") == "new"
	})
}

// TestRestartLoadsTheAppliedRevisionOnce: after a restart every
// environment's worker loads its applied revision's configuration; they
// share one load of the revision instead of each loading all of it (a
// thousand environments made a million file loads, and a replica gaining
// hundreds of environments took a minute and 400 MB to do it).
func TestRestartLoadsTheAppliedRevisionOnce(t *testing.T) {
	f := newFixture(t)
	ctx, stop := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, revs) }()
	const n = 20
	names, files := manyEnvs(n)
	rev := f.revision(files)
	revs <- rev
	eventually(t, "every environment applied", func() bool {
		for _, name := range names {
			if f.applied(name) != rev.Commit {
				return false
			}
		}
		return true
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	var loads atomic.Int64
	f.r = f.restarted(func(o *Options) {
		load := o.Load
		o.Load = func(dir string) (*config.Revision, error) { loads.Add(1); return load(dir) }
	})
	runDaemon(t, f)
	// A drift pass of each environment needs its applied configuration.
	for _, name := range names {
		if err := f.r.Sync(context.Background(), name); err != nil {
			t.Fatalf("sync %s: %v", name, err)
		}
	}
	if got := loads.Load(); got != 1 {
		t.Errorf("the applied revision was loaded %d times for %d environments, want once", got, n)
	}
}

// A pull request's head at the commit of a branch revision is another
// configuration (its preview environments): loading it must not return
// the branch's configuration shared by an earlier load.
func TestPullRequestHeadNotSharedWithBranch(t *testing.T) {
	f := newFixture(t)
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/app.conf", "v1\n"), "")})
	if _, cfg, err := f.r.loadEarlier(context.Background(), rev); err != nil || cfg.Environment("prod") == nil {
		t.Fatalf("load the branch revision: %v", err)
	}
	head := rev
	head.Ref, head.PullRequest = "refs/pull/3/head", 3
	_, cfg, err := f.r.loadEarlier(context.Background(), head)
	if err == nil && cfg.Environment("prod") != nil {
		t.Fatal("the pull request's head was given the branch's configuration of the same commit")
	}
}

// TestBehindSourceNotRolledOut: in a cluster, a replica whose view of the
// source is older than the revision another replica applied (it was
// paused, its poll is behind) does not roll its older revision out over
// the newer one, until staleViewWait has passed (the replicas' clocks may
// differ); a revision received after the applied one (a revert pushed
// later) rolls out at once.
func TestBehindSourceNotRolledOut(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *Options) {
		o.Clock = kit.NowFunc(clock.Now)
		o.Ownership = lostOwnership{new(atomic.Bool)}
	})
	files := func(content string) map[string]string {
		return map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", content), "")}
	}
	received := func(content string) sources.Revision {
		rev := f.revision(files(content))
		rev.Time = clock.Now()
		clock.add(time.Second)
		return rev
	}
	stale := received("old")
	applied := received("new") // by the previous owner, after stale
	revs := runDaemon(t, f)
	revs <- applied
	eventually(t, "the newer revision applied", func() bool { return f.applied("prod") == applied.Commit })
	// This replica's source still says stale: it waits (a retry is due
	// when the wait ends).
	revs <- stale
	eventually(t, "the older revision held back", func() bool { return !f.state("prod").RetryAt.IsZero() })
	if got := f.hostFile("h1", "/etc/a.conf"); got != "new" || f.applied("prod") != applied.Commit {
		t.Fatalf("a revision received before the applied one was rolled out over it: a.conf %q", got)
	}
	revert := received("old")
	revs <- revert
	eventually(t, "a revision received after the applied one (a revert) rolled out", func() bool {
		return f.applied("prod") == revert.Commit && f.hostFile("h1", "/etc/a.conf") == "old"
	})
	// applied, received before the revert, waits, then goes on once
	// staleViewWait has passed.
	revs <- applied
	eventually(t, "the older revision held back", func() bool { return !f.state("prod").RetryAt.IsZero() })
	if got := f.hostFile("h1", "/etc/a.conf"); got != "old" {
		t.Fatalf("an older revision rolled out at once: a.conf %q", got)
	}
	clock.add(staleViewWait)
	revs <- applied
	eventually(t, "the older revision rolled out after the wait", func() bool {
		return f.applied("prod") == applied.Commit && f.hostFile("h1", "/etc/a.conf") == "new"
	})
}

// manyEnvs declares n environments, e00..., each with one local host
// holding /etc/app.conf at v1: their names and the revision's files.
func manyEnvs(n int) ([]string, map[string]string) {
	files := map[string]string{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("e%02d", i)
		names = append(names, name)
		files["environments/"+name+".yaml"] = envYAML(name, []string{name + "-h"}, nil, etc+fileRes("/etc/app.conf", "v1\n"), "")
	}
	return names, files
}
