package reconciler

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/syncbuf"
)

// testClock is a settable Options.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gatedRepo is one revision declaring staging and prod (prod promotes
// from staging after soak, approval required), each with one local host
// whose /etc/app.conf holds content.
func (f *fixture) gatedRepo(content, prodExtra string) sources.Revision {
	res := etc + fileRes("/etc/app.conf", content)
	return f.revision(map[string]string{
		"environments/staging.yaml": envYAML("staging", []string{"s1"}, nil, res, ""),
		"environments/prod.yaml": envYAML("prod", []string{"p1"}, nil, res,
			"promote: {from: staging, soak: 10m}\napproval: {required: true}\n"+prodExtra),
	})
}

// statusPage returns the status page at path, served by the API.
func (f *fixture) statusPage(t *testing.T, path string) string {
	t.Helper()
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// awaitLatest waits until env's worker has taken in the revision commit.
func awaitLatest(t *testing.T, f *fixture, env, commit string) {
	t.Helper()
	eventually(t, env+" takes in "+kit.Short(commit), func() bool {
		st, ok := f.r.lookup(env)
		return ok && st.snap.Load().latest == commit
	})
}

func (f *fixture) state(env string) status.EnvStatus {
	st, _ := f.r.Environment(env)
	return st
}

// TestPromotionSoakApproval walks a revision from staging to prod: prod
// soaks, then awaits approval with its plan visible, and gets exactly the
// approved commit; a second push during the soak restarts it; a rejected
// revision is never applied; every gate survives a restart.
func TestPromotionSoakApproval(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	ctx := context.Background()
	revs, stop := runStoppable(t, f)

	rev1 := f.gatedRepo("v1", "")
	revs <- rev1
	eventually(t, "staging applies rev1", func() bool { return f.applied("staging") == rev1.Commit })
	eventually(t, "prod soaks", func() bool {
		g := f.state("prod").Gate
		return g != nil && g.State == status.StateWaiting && strings.HasPrefix(g.Reason, "soaking until 2026-12-02T10:10:00Z")
	})
	if got := f.hostFile("p1", "/etc/app.conf"); got != "<absent>" {
		t.Fatalf("prod changed while soaking: %q", got)
	}
	if v := testutil.ToFloat64(f.r.m.pending.WithLabelValues("prod")); v != 1 {
		t.Errorf("promotion_pending = %v, want 1", v)
	}
	if st := f.state("prod"); st.State != status.StateWaiting {
		t.Errorf("prod state %q, want waiting", st.State)
	}

	// A second push during the soak restarts it.
	clock.add(5 * time.Minute)
	rev2 := f.gatedRepo("v2", "")
	revs <- rev2
	eventually(t, "staging applies rev2", func() bool { return f.applied("staging") == rev2.Commit })
	eventually(t, "prod soaks rev2 from its start", func() bool {
		g := f.state("prod").Gate
		return g != nil && g.Revision.Commit == rev2.Commit && strings.HasPrefix(g.Reason, "soaking until 2026-12-02T10:15:00Z")
	})
	// A restart while soaking: the soak goes on from where it was.
	stop()
	_ = f.r.Close()
	f.r = f.restarted(func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	if g := f.state("prod").Gate; g == nil || g.State != status.StateWaiting || !strings.HasPrefix(g.Reason, "soaking until 2026-12-02T10:15:00Z") {
		t.Fatalf("prod right after a restart while soaking: %+v", g)
	}
	revs, stop = runStoppable(t, f)
	revs <- rev2
	awaitLatest(t, f, "prod", rev2.Commit)
	clock.add(6 * time.Minute) // rev1's soak would be over, rev2's is not
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if g := f.state("prod").Gate; g == nil || g.State != status.StateWaiting || !strings.HasPrefix(g.Reason, "soaking until 2026-12-02T10:15:00Z") {
		t.Fatalf("prod gate after 6 of rev2's 10 minutes and a restart: %+v", g)
	}

	// Approval through the API names one revision.
	if _, err := f.r.Decide(ctx, "prod", rev1.Commit[:8], store.Decision{Approved: true, By: "token:rm", Via: "api"}); !errors.Is(err, status.ErrNotAwaiting) {
		t.Fatalf("approving rev1, which does not wait: %v", err)
	}
	clock.add(5 * time.Minute)
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	st := f.state("prod")
	if st.State != status.StateAwaitingApproval || st.Gate.Revision.Commit != rev2.Commit {
		t.Fatalf("prod after the soak: %s %+v", st.State, st.Gate)
	}
	if st.GatePlan == nil || st.GatePlan.Commit != rev2.Commit || len(st.GatePlan.Hosts) != 1 {
		t.Fatalf("no plan shown for the revision awaiting approval: %+v", st.GatePlan)
	}
	if got := f.hostFile("p1", "/etc/app.conf"); got != "<absent>" {
		t.Fatalf("prod changed before approval: %q", got)
	}
	// Drift corrected on staging restarts its clean period, but rev2
	// already passed promotion: it keeps awaiting approval. (Staging first
	// ends the run of rev2 sent again after the restart.)
	eventually(t, "staging runs rev2 again", func() bool { runs, _ := f.r.History("staging", 0); return len(runs) == 3 })
	f.writeHostFile("s1", "/etc/app.conf", "edited")
	if err := f.r.Sync(ctx, "staging"); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("s1", "/etc/app.conf"); got != "v2" {
		t.Fatalf("staging's drift not corrected: %q", got)
	}

	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if st := f.state("prod"); st.State != status.StateAwaitingApproval || st.Gate.Revision.Commit != rev2.Commit {
		t.Fatalf("prod after drift on staging: %s %+v", st.State, st.Gate)
	}

	// A restart keeps the gate; the approval then still works.
	stop()
	_ = f.r.Close()
	f.r = f.restarted(func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	revs, stop = runStoppable(t, f)
	revs <- rev2
	if st := f.state("prod"); st.State != status.StateAwaitingApproval || st.Gate == nil || st.Gate.Revision.Commit != rev2.Commit {
		t.Fatalf("prod after a restart: %s %+v", st.State, st.Gate)
	}
	d, err := f.r.Decide(ctx, "prod", rev2.Commit[:7], store.Decision{Approved: true, By: "token:rm", Via: "api"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && f.applied("prod") != rev2.Commit; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if f.applied("prod") != rev2.Commit {
		t.Fatalf("prod %+v %+v\nstaging %+v", f.state("prod"), f.state("prod").Gate, f.state("staging"))
	}
	if got := f.hostFile("p1", "/etc/app.conf"); got != "v2" {
		t.Fatalf("prod host has %q, want v2", got)
	}
	runs, _ := f.r.History("prod", 1)
	if len(runs) != 1 || runs[0].Decision == nil || runs[0].Decision.By != "token:rm" || !runs[0].Decision.At.Equal(d.At) {
		t.Fatalf("history does not say who approved: %+v", runs)
	}
	if v := testutil.ToFloat64(f.r.m.pending.WithLabelValues("prod")); v != 0 {
		t.Errorf("promotion_pending = %v after the apply, want 0", v)
	}

	// A rejected revision is never applied.
	rev3 := f.gatedRepo("v3", "")
	revs <- rev3
	eventually(t, "staging applies rev3", func() bool { return f.applied("staging") == rev3.Commit })
	clock.add(11 * time.Minute)
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Decide(ctx, "prod", rev3.Commit, store.Decision{Approved: false, By: "token:rm", Via: "api"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "prod shows rev3 rejected", func() bool { return f.state("prod").State == status.StateRejected })
	// A restart keeps the rejection.
	stop()
	_ = f.r.Close()
	f.r = f.restarted(func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	revs, _ = runStoppable(t, f)
	revs <- rev3
	awaitLatest(t, f, "prod", rev3.Commit)
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if st := f.state("prod"); st.State != status.StateRejected || st.Gate == nil || st.Gate.Revision.Commit != rev3.Commit {
		t.Fatalf("prod after a restart with rev3 rejected: %s %+v", st.State, st.Gate)
	}
	if _, err := f.r.Decide(ctx, "prod", rev3.Commit, store.Decision{Approved: true, By: "token:rm", Via: "api"}); !errors.Is(err, status.ErrNotAwaiting) {
		t.Fatalf("approving a rejected revision: %v", err)
	}
	for range 3 {
		if err := f.r.Sync(ctx, "prod"); err != nil {
			t.Fatal(err)
		}
	}
	if f.applied("prod") != rev2.Commit || f.hostFile("p1", "/etc/app.conf") != "v2" {
		t.Fatalf("a rejected revision was applied")
	}
	runs, _ = f.r.History("prod", 0)
	rejected := 0
	for _, run := range runs {
		if run.Result == status.ResultRejected && run.Revision.Commit == rev3.Commit && run.Decision != nil && !run.Decision.Approved {
			rejected++
		}
	}
	if rejected != 1 {
		t.Fatalf("history records the rejection %d times: %+v", rejected, runs)
	}
}

// TestPromotionSkipsRolledBackRevision: a revision that staging rolled back
// never reaches prod.
func TestPromotionSkipsRolledBackRevision(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	ctx := context.Background()
	revs := runDaemon(t, f)
	check := "verify:\n  - command: \"grep -q good $DRIFTLESS_ROOT/etc/app.conf\"\n    name: good\n"
	mk := func(content string) sources.Revision {
		res := etc + fileRes("/etc/app.conf", content)
		return f.revision(map[string]string{
			"environments/staging.yaml": envYAML("staging", []string{"s1"}, nil, res, check),
			"environments/prod.yaml":    envYAML("prod", []string{"p1"}, nil, res, "promote: {from: staging, soak: 1m}\n"),
		})
	}
	good := mk("good 1")
	revs <- good
	eventually(t, "staging applies the good revision", func() bool { return f.applied("staging") == good.Commit })
	clock.add(2 * time.Minute)
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "prod gets the good revision", func() bool { return f.applied("prod") == good.Commit })
	bad := mk("bad")
	revs <- bad
	eventually(t, "staging rolls the bad revision back", func() bool { return f.state("staging").State == status.StateRolledBack })
	clock.add(time.Hour)
	for range 3 {
		if err := f.r.Sync(ctx, "prod"); err != nil {
			t.Fatal(err)
		}
	}
	if f.applied("prod") != good.Commit || f.hostFile("p1", "/etc/app.conf") != "good 1" {
		t.Fatalf("prod moved to a revision staging rolled back")
	}
}

// TestDenyWindowHoldsRevision: a deny window in effect holds a revision
// back (a sync without force is refused; drift is only reported), and lets
// it through once it ends; a forced sync goes through and is recorded.
func TestDenyWindowHoldsRevision(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC)} // a Wednesday
	f := newFixture(t, func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	ctx := context.Background()
	revs, stop := runStoppable(t, f)
	window := "windows:\n  - {kind: deny, days: [wed], hours: \"10:00-11:00\", timezone: UTC}\n"
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"p1"}, nil,
			etc+fileRes("/etc/app.conf", content), window)})
	}
	rev1 := mk("v1")
	revs <- rev1
	eventually(t, "the window holds rev1", func() bool { return f.state("prod").State == status.StateWindowClosed })
	closedUntil := func(what string) {
		t.Helper()
		g := f.state("prod").Gate
		if g == nil || g.State != status.StateWindowClosed || g.Revision.Commit != rev1.Commit ||
			!g.Until.Equal(time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)) ||
			!strings.HasPrefix(g.Reason, "window closed until 2026-12-02T11:00:00Z: deny window wed 10:00-11:00 UTC is open") {
			t.Fatalf("%s: gate %+v, want rev1 held until 11:00", what, g)
		}
	}
	closedUntil("held by the window")
	if page := f.statusPage(t, "/environments/prod"); !strings.Contains(page, "window closed until 2026-12-02T11:00:00Z") {
		t.Errorf("the status page does not say until when the window holds rev1:\n%s", page)
	}
	eventually(t, "the gate's report says until when", func() bool {
		rep, ok := f.rep.find(status.StatusPending)
		return ok && rep.Gate == status.StateWindowClosed && strings.Contains(rep.Description, "window closed until 2026-12-02T11:00:00Z")
	})
	// A restart keeps the revision held, until the same end.
	stop()
	_ = f.r.Close()
	f.r = f.restarted(func(o *Options) { o.Clock = kit.NowFunc(clock.Now) })
	closedUntil("right after a restart")
	revs, _ = runStoppable(t, f)
	revs <- rev1
	awaitLatest(t, f, "prod", rev1.Commit)
	if err := f.r.Sync(ctx, "prod"); !errors.Is(err, status.ErrWindowClosed) || !strings.Contains(err.Error(), "window closed until 2026-12-02T11:00:00Z") {
		t.Fatalf("sync in a closed window: %v, want ErrWindowClosed saying until when", err)
	}
	closedUntil("after a restart and a sync")
	if got := f.hostFile("p1", "/etc/app.conf"); got != "<absent>" {
		t.Fatalf("applied through a closed window: %q", got)
	}
	clock.add(31 * time.Minute)
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if f.applied("prod") != rev1.Commit || f.hostFile("p1", "/etc/app.conf") != "v1" {
		t.Fatal("rev1 not applied once the window ended")
	}

	// Next Wednesday, inside the window: drift is only reported, and a
	// forced sync goes through.
	clock.add(7*24*time.Hour - 30*time.Minute)
	f.writeHostFile("p1", "/etc/app.conf", "edited")
	rev2 := mk("v2")
	revs <- rev2
	eventually(t, "the window holds rev2", func() bool { return f.state("prod").State == status.StateWindowClosed })
	if err := f.r.Sync(ctx, "prod"); !errors.Is(err, status.ErrWindowClosed) {
		t.Fatalf("sync in a closed window: %v", err)
	}
	if got := f.hostFile("p1", "/etc/app.conf"); got != "edited" {
		t.Fatalf("drift corrected inside a deny window without drift: true: %q", got)
	}
	if err := f.r.ForceSync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if f.applied("prod") != rev2.Commit || f.hostFile("p1", "/etc/app.conf") != "v2" {
		t.Fatal("a forced sync did not go through the window")
	}
	runs, _ := f.r.History("prod", 1)
	if len(runs) != 1 || !runs[0].Forced || runs[0].Trigger != status.TriggerSync {
		t.Fatalf("forced sync not recorded as forced: %+v", runs)
	}
}

// runStoppable is runDaemon with a stop function that ends Run and waits
// for it.
func runStoppable(t *testing.T, f *fixture) (chan<- sources.Revision, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, revs) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return revs, stop
}

// TestPromotionAcrossSources: prod, declared by another source than its
// upstream, gets staging's commit. Once every source has produced a
// revision, an upstream no source declares and a cycle through two
// sources are refused: each environment at fault shows the error
// (status, status page) and reports it, until a revision corrects it.
func TestPromotionAcrossSources(t *testing.T) {
	logs := &syncbuf.Buffer{}
	f := newFixture(t, func(o *Options) {
		o.Sources = []string{"apps", "prod-repo"}
		o.Logger = zerolog.New(logs)
	})
	revs := runDaemon(t, f)
	res := etc + fileRes("/etc/app.conf", "v1")
	prodFiles := map[string]string{
		"environments/prod.yaml": envYAML("prod", []string{"p1"}, nil, res, "promote: {from: staging}\n"),
		"environments/edge.yaml": envYAML("edge", []string{"e1"}, nil, res, "promote: {from: [staging, qa]}\n"),
		"environments/a.yaml":    envYAML("a", []string{"a1"}, nil, res, "promote: {from: b}\n"),
	}
	prod := f.revision(prodFiles)
	prod.Source = "prod-repo"
	revs <- prod
	eventually(t, "prod waits for staging", func() bool {
		g := f.state("prod").Gate
		return g != nil && g.Reason == "waiting for staging"
	})
	if strings.Contains(logs.String(), "invalid promotion") || f.state("a").PromotionError != "" {
		t.Fatal("reported before every source produced a revision")
	}
	appsFiles := map[string]string{
		"environments/staging.yaml": envYAML("staging", []string{"s1"}, nil, res, ""),
		"environments/b.yaml":       envYAML("b", []string{"b1"}, nil, res, "promote: {from: a}\n"),
	}
	apps := f.revision(appsFiles)
	apps.Source = "apps"
	// The same commit reaches prod's source too (the same repository).
	prod2 := prod
	prod2.Commit = apps.Commit
	if err := os.Rename(prod.Dir, filepath.Join(filepath.Dir(prod.Dir), apps.Commit+"-prod")); err != nil {
		t.Fatal(err)
	}
	prod2.Dir = filepath.Join(filepath.Dir(prod.Dir), apps.Commit+"-prod")
	revs <- apps
	eventually(t, "the unknown upstream is reported", func() bool {
		return strings.Contains(logs.String(), `promote.from: environment \"qa\" is declared by no loaded source`)
	})
	eventually(t, "staging applies", func() bool { return f.applied("staging") == apps.Commit })
	revs <- prod2
	eventually(t, "prod gets the commit staging verified", func() bool { return f.applied("prod") == apps.Commit })
	for env, want := range map[string]string{
		"edge": `environments/edge.yaml:2:27: promote.from: environment "qa" is declared by no loaded source`,
		// The entry that closes the cycle is at fault (a then waits for b).
		"b": "environments/b.yaml:2:17: promote.from: promotion cycle a -> b -> a",
	} {
		eventually(t, env+" shows its promotion refused", func() bool {
			st := f.state(env)
			return strings.Contains(st.PromotionError, want) && st.Gate != nil &&
				strings.HasPrefix(st.Gate.Reason, "promotion refused: ") && st.State == status.StateWaiting
		})
		eventually(t, env+"'s refusal is reported", func() bool {
			for _, rep := range f.rep.all() {
				if rep.Environment == env && rep.Status == status.StatusFailure && strings.Contains(rep.Description, want) {
					return true
				}
			}
			return false
		})
	}
	if st := f.state("prod"); st.PromotionError != "" {
		t.Errorf("prod's promotion is in order, yet: %q", st.PromotionError)
	}
	page := f.statusPage(t, "/environments/b")
	if !strings.Contains(page, "refused: environments/b.yaml:2:17: promote.from: promotion cycle a -&gt; b -&gt; a") {
		t.Errorf("the status page does not show b's promotion refused:\n%s", page)
	}

	// A revision of apps that ends the cycle and declares qa clears it.
	appsFiles["environments/b.yaml"] = envYAML("b", []string{"b1"}, nil, res, "")
	appsFiles["environments/qa.yaml"] = envYAML("qa", []string{"q1"}, nil, res, "")
	fixed := f.revision(appsFiles)
	fixed.Source = "apps"
	revs <- fixed
	for _, env := range []string{"a", "b", "edge"} {
		eventually(t, env+"'s promotion error clears", func() bool { return f.state(env).PromotionError == "" })
	}
}

// TestPromotionChainAndAgreement: dev -> staging -> prod passes a commit
// down the chain; an environment promoting from two upstreams waits until
// both are on the same commit.
func TestPromotionChainAndAgreement(t *testing.T) {
	f := newFixture(t)
	revs := runDaemon(t, f)
	mk := func(content string) sources.Revision {
		res := etc + fileRes("/etc/app.conf", content)
		files := map[string]string{
			"environments/dev.yaml":     envYAML("dev", []string{"d1"}, nil, res, ""),
			"environments/staging.yaml": envYAML("staging", []string{"s1"}, nil, res, "promote: {from: dev}\n"),
			"environments/prod.yaml":    envYAML("prod", []string{"p1"}, nil, res, "promote: {from: staging}\n"),
			"environments/eu.yaml":      envYAML("eu", []string{"e1"}, nil, res, "promote: {from: [staging, qa]}\n"),
			"environments/qa.yaml":      envYAML("qa", []string{"q1"}, nil, res, "promote: {from: dev}\nwindows:\n  - {kind: deny, days: [mon, tue, wed, thu, fri, sat, sun]}\n"),
		}
		return f.revision(files)
	}
	rev := mk("v1")
	revs <- rev
	eventually(t, "prod gets the commit through dev and staging", func() bool { return f.applied("prod") == rev.Commit })
	if f.hostFile("p1", "/etc/app.conf") != "v1" {
		t.Fatal("prod host not changed")
	}
	// qa is held by its window, so staging and qa do not agree: eu waits.
	eventually(t, "eu waits for its upstreams to agree", func() bool {
		g := f.state("eu").Gate
		return g != nil && g.State == status.StateWaiting && strings.Contains(g.Reason, "qa")
	})
	if f.applied("eu") != "" {
		t.Fatal("eu applied although qa never took the commit")
	}
}

// TestDecisionRejectionIsFinal: once a commit is rejected, a later
// approval of it (two comments handled at once, or an approval through
// another way in) does not make it approved; another commit's decisions
// do not count for it.
func TestDecisionRejectionIsFinal(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	rec := store.EnvRecord{Decisions: []store.Decision{
		{Commit: c1, Approved: true, By: "github:alice"},
		{Commit: c1, Approved: false, By: "github:bob"},
		{Commit: c1, Approved: true, By: "github:alice"},
		{Commit: c2, Approved: true, By: "github:alice"},
	}}
	if d := rec.Decision(c1); d == nil || d.Approved || d.By != "github:bob" {
		t.Errorf("decision(c1) = %+v, want bob's rejection", d)
	}
	if d := rec.Decision(c2); d == nil || !d.Approved {
		t.Errorf("decision(c2) = %+v, want the approval", d)
	}
	if d := rec.Decision("3333333333333333333333333333333333333333"); d != nil {
		t.Errorf("decision of an undecided commit = %+v", d)
	}
}
