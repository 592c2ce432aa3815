package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/inventory"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// previewWorld is a reconciler with preview environments: the template's
// provisioner makes local hosts (sandboxed) and logs its runs in dir.
type previewWorld struct {
	*fixture
	dir   string
	clock *testClock
}

func newPreviewWorld(t *testing.T) *previewWorld {
	w := &previewWorld{dir: t.TempDir(), clock: &testClock{now: time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)}}
	w.fixture = newFixture(t, w.opts)
	return w
}

func (w *previewWorld) opts(o *Options) {
	o.Clock = kit.NowFunc(w.clock.Now)
	o.DriftInterval = 50 * time.Millisecond
	o.Provisioner = inventory.Provisioner{}
	o.LoadPreview = func(dir string, p *config.PreviewLoad) (*config.Revision, error) {
		return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: w.sandbox, Preview: p, Untrusted: true})
	}
}

// template declares app as a preview template whose create logs its
// variables and prints one local host pr<N>-web, and whose destroy logs
// what it received. createLog names the file create appends to.
func (w *previewWorld) template(createLog string) string {
	host := `pr$DRIFTLESS_PULL_REQUEST-web`
	create := `echo "$DRIFTLESS_ENVIRONMENT $DRIFTLESS_PULL_REQUEST $DRIFTLESS_COMMIT" >> ` + createLog +
		`; printf '{"web":{"hosts":["%s"],"vars":{"greeting":"hi"}},"_meta":{"hostvars":{"%s":{"ansible_connection":"local"}}}}' ` + host + ` ` + host
	destroy := `test ! -e ` + filepath.Join(w.dir, "fail-destroy") + ` || { echo "token=s3cr3t-destroy" >&2; exit 1; }; { echo "$DRIFTLESS_ENVIRONMENT"; cat; echo; } >> ` + filepath.Join(w.dir, "destroyed")
	return "environment: app\npreview: true\npreview_ttl: 1h\nprovision:\n  create: |\n    " + create + "\n  destroy: |\n    " + destroy + "\n" +
		"approval: {required: true, approvers: [alice]}\nroles:\n  web:\n" + etc
}

// appFile is the file the pull requests change.
func appFile(content string) string { return fileRes("/etc/app.conf", content) }

func (w *previewWorld) pullRequest(n int, author string, trusted bool, files map[string]string) sources.Revision {
	rev := w.revision(files)
	rev.Preview, rev.PullRequest, rev.Author, rev.TrustedAuthor, rev.Ref = true, n, author, trusted, fmt.Sprintf("refs/pull/%d/head", n)
	return rev
}

func readLog(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPreviewEnvironment: a pull request of an author not trusted gets
// app-pr-7 awaiting approval, with nothing run; an approval provisions
// its host and converges it; a push waits for approval again; the pull
// request's own provisioner never runs; the preview survives a restart;
// closing the pull request destroys its hosts and removes it.
func TestPreviewEnvironment(t *testing.T) {
	w := newPreviewWorld(t)
	created, evil := filepath.Join(w.dir, "created"), filepath.Join(w.dir, "evil")
	main := w.revision(map[string]string{"environments/app.yaml": w.template(created)})
	// The pull request changes the file and the provisioner.
	pr := func(content string) map[string]string {
		return map[string]string{"environments/app.yaml": strings.Replace(w.template(created), created, evil, 1) + appFile(content)}
	}

	var revs chan sources.Revision
	var cancel context.CancelFunc
	done := make(chan error, 1)
	start := func() {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		revs = make(chan sources.Revision)
		go func() { done <- w.r.Run(ctx, revs) }()
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	start()
	revs <- main
	pr1 := w.pullRequest(7, "mallory", false, pr("one"))
	revs <- pr1
	eventually(t, "app-pr-7 awaiting approval", func() bool { return w.state("app-pr-7").State == status.StateAwaitingApproval })
	if st := w.state("app"); st.State != "" && st.State != status.StateUnknown {
		t.Errorf("the template itself is an environment in state %q", st.State)
	}
	time.Sleep(100 * time.Millisecond) // two drift ticks: still nothing runs
	if got := readLog(t, created) + readLog(t, evil); got != "" {
		t.Fatalf("a provisioner ran before any approval: %q", got)
	}
	if got := w.hostFile("pr7-web", "/etc/app.conf"); got != "<absent>" {
		t.Fatalf("host written before approval: %q", got)
	}
	// A comment on another pull request does not approve this one.
	ev := sources.Event{Provider: "github", Login: "alice", PullRequest: 8}
	if err := w.r.DecideByComment("app-pr-7", pr1.Commit, pr1.Commit[:7], true, ev); err == nil || !strings.Contains(err.Error(), "not of 8") {
		t.Errorf("approval from another pull request: %v", err)
	}
	ev.PullRequest = 7
	// A comment approves a preview's commit only when it names it: the
	// author may push between the approver reading the plan and the
	// comment arriving, and the head at that time is theirs to choose.
	if err := w.r.DecideByComment("app-pr-7", pr1.Commit, "", true, ev); err == nil || !strings.Contains(err.Error(), "name the commit") {
		t.Errorf("approval of a preview naming no commit: %v", err)
	}
	if err := w.r.DecideByComment("app-pr-7", pr1.Commit, "0123456", true, ev); err == nil || !strings.Contains(err.Error(), "not the pull request's head") {
		t.Errorf("approval naming another commit: %v", err)
	}
	if got := w.state("app-pr-7"); got.State != status.StateAwaitingApproval || len(got.Decisions) != 0 {
		t.Fatalf("a refused comment decided: %+v", got)
	}
	if err := w.r.DecideByComment("app-pr-7", pr1.Commit, pr1.Commit[:7], true, ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, "app-pr-7 converged", func() bool { return w.hostFile("pr7-web", "/etc/app.conf") == "one" })
	eventually(t, "app-pr-7 synced", func() bool { return w.state("app-pr-7").State == status.StateSynced })
	if got, want := readLog(t, created), "app-pr-7 7 "+pr1.Commit+"\n"; got != want {
		t.Errorf("create ran with %q, want %q", got, want)
	}
	if got := readLog(t, evil); got != "" {
		t.Errorf("the pull request's provisioner ran: %q", got)
	}
	if p := w.state("app-pr-7").Preview; p == nil || p.PullRequest != 7 || p.Author != "mallory" || p.Trusted ||
		len(p.Hosts) != 1 || p.Hosts[0] != "pr7-web" || !p.Expires.Equal(w.clock.Now().Add(time.Hour)) {
		t.Errorf("preview status %+v", p)
	}

	// A push waits for approval again; the hosts stay as they are.
	pr2 := w.pullRequest(7, "mallory", false, pr("two"))
	revs <- pr2
	eventually(t, "the push awaits approval", func() bool {
		st := w.state("app-pr-7")
		return st.State == status.StateAwaitingApproval && st.Gate != nil && st.Gate.Revision.Commit == pr2.Commit
	})
	time.Sleep(100 * time.Millisecond)
	if got := w.hostFile("pr7-web", "/etc/app.conf"); got != "one" {
		t.Fatalf("push applied before approval: %q", got)
	}

	// A restart keeps the preview, its hosts and the revision waiting.
	stop()
	w.r = w.restarted(w.opts)
	start()
	defer stop()
	revs <- main
	eventually(t, "the push still awaits approval after a restart", func() bool {
		st := w.state("app-pr-7")
		return st.State == status.StateAwaitingApproval && st.Gate != nil && st.Gate.Revision.Commit == pr2.Commit
	})
	if _, err := w.r.Decide(context.Background(), "app-pr-7", pr2.Commit, store.Decision{Approved: true, By: "token:ops", Via: "api"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the push converged", func() bool { return w.hostFile("pr7-web", "/etc/app.conf") == "two" })
	if n := strings.Count(readLog(t, created), "\n"); n != 1 {
		t.Errorf("create ran %d times, want once", n)
	}

	// Closing tears it down: destroy gets what create printed; the host
	// is never touched again.
	revs <- sources.Revision{Source: "test", Preview: true, PullRequest: 7, Closed: true}
	eventually(t, "app-pr-7 removed", func() bool { return w.state("app-pr-7").State == status.StateRemoved })
	eventually(t, "app-pr-7's host destroyed", func() bool {
		return strings.HasPrefix(readLog(t, filepath.Join(w.dir, "destroyed")), "app-pr-7\n{\"web\":{\"hosts\":[\"pr7-web\"]")
	})
	if st := w.state("app-pr-7"); !strings.Contains(st.LastError, "pull request 7 closed") {
		t.Errorf("removed preview says %q", st.LastError)
	}
	w.writeHostFile("pr7-web", "/etc/app.conf", "changed")
	time.Sleep(150 * time.Millisecond) // three drift intervals
	if got := w.hostFile("pr7-web", "/etc/app.conf"); got != "changed" {
		t.Errorf("a removed preview's host was touched: %q", got)
	}
	eventually(t, "the removal reported", func() bool { _, ok := w.rep.find(status.StatusRemoved); return ok })
	eventually(t, "app-pr-7's series dropped", func() bool { return allSeriesOf(t, w.r, "app-pr-7") == 0 })
}

// TestPreviewTTL: a trusted author's pull request goes through at once,
// and its preview is destroyed when its time to live runs out (settable
// clock), not before.
func TestPreviewTTL(t *testing.T) {
	w := newPreviewWorld(t)
	main := w.revision(map[string]string{"environments/app.yaml": w.template(filepath.Join(w.dir, "created"))})
	var revs chan sources.Revision
	var cancel context.CancelFunc
	done := make(chan error, 1)
	start := func() {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		revs = make(chan sources.Revision)
		go func() { done <- w.r.Run(ctx, revs) }()
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	start()
	revs <- main
	revs <- w.pullRequest(9, "bob", true, map[string]string{"environments/app.yaml": w.template("unused") + appFile("nine")})
	eventually(t, "app-pr-9 converged without approval", func() bool { return w.hostFile("pr9-web", "/etc/app.conf") == "nine" })
	w.clock.add(59 * time.Minute)
	time.Sleep(150 * time.Millisecond)
	if st := w.state("app-pr-9"); st.State == status.StateRemoved {
		t.Fatal("removed before its time to live ran out")
	}
	// The first destroys fail: they are tried again until one works.
	fail := filepath.Join(w.dir, "fail-destroy")
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.clock.add(2 * time.Minute)
	eventually(t, "app-pr-9 removed", func() bool { return w.state("app-pr-9").State == status.StateRemoved })
	eventually(t, "a failed destroy recorded", func() bool {
		p := w.state("app-pr-9").Preview
		return p != nil && strings.Contains(p.DestroyError, "exited 1")
	})
	eventually(t, "the failed destroy reported", func() bool { _, ok := w.rep.find(status.StatusFailure); return ok })
	// What the provisioner printed stays with the operators (log, API):
	// reports go to the pull request, whose author reads them.
	if rep, _ := w.rep.find(status.StatusFailure); strings.Contains(rep.Description, "s3cr3t") {
		t.Errorf("the destroy's output reported: %q", rep.Description)
	}
	// A restart takes the teardown up again.
	stop()
	w.r = w.restarted(w.opts)
	start()
	defer stop()
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	eventually(t, "app-pr-9's host destroyed", func() bool { return strings.HasPrefix(readLog(t, filepath.Join(w.dir, "destroyed")), "app-pr-9\n") })
	eventually(t, "the destroy recorded", func() bool {
		p := w.state("app-pr-9").Preview
		return p != nil && p.DestroyError == ""
	})
	if st := w.state("app-pr-9"); !strings.Contains(st.LastError, "time to live") {
		t.Errorf("expired preview says %q", st.LastError)
	}
}

// TestPreviewCreateOutputNotReported: a create that fails is a failed run,
// reported to the pull request without what the command printed (the log
// has it).
func TestPreviewCreateOutputNotReported(t *testing.T) {
	w := newPreviewWorld(t)
	tpl := strings.Replace(w.template(filepath.Join(w.dir, "created")), "  create: |\n    ", "  create: |\n    echo token=s3cr3t-create >&2; exit 1; ", 1)
	revs := make(chan sources.Revision)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.r.Run(ctx, revs) }()
	defer func() { cancel(); <-done }()
	revs <- w.revision(map[string]string{"environments/app.yaml": tpl})
	revs <- w.pullRequest(4, "bob", true, map[string]string{"environments/app.yaml": tpl + appFile("four")})
	eventually(t, "the failed create reported", func() bool { _, ok := w.rep.find(status.StatusFailure); return ok })
	rep, _ := w.rep.find(status.StatusFailure)
	if !strings.Contains(rep.Description, "create") || strings.Contains(rep.Description, "s3cr3t") {
		t.Errorf("reported %q: want the create named, not its output", rep.Description)
	}
	if st := w.state("app-pr-4"); strings.Contains(st.LastError, "s3cr3t") {
		t.Errorf("the status shows the create's output: %q", st.LastError)
	}
}

// allSeriesOf counts the series labelled environment=env in r's registry.
func allSeriesOf(t *testing.T, r *Reconciler, env string) int {
	t.Helper()
	mfs, err := r.opts.Registerer.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "environment" && l.GetValue() == env {
					n++
				}
			}
		}
	}
	return n
}

// TestPreviewEndsOnce: a preview ended twice at once (its pull request
// closed as its time to live ran out) destroys its hosts once.
func TestPreviewEndsOnce(t *testing.T) {
	w := newPreviewWorld(t)
	release, destroyed := filepath.Join(w.dir, "release"), filepath.Join(w.dir, "destroyed")
	tpl := strings.Replace(w.template(filepath.Join(w.dir, "created")), "  destroy: |\n    ",
		"  destroy: |\n    until test -e "+release+"; do sleep 0.01; done; ", 1)
	revs := make(chan sources.Revision)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.r.Run(ctx, revs) }()
	defer func() { cancel(); <-done }()
	revs <- w.revision(map[string]string{"environments/app.yaml": tpl})
	revs <- w.pullRequest(3, "bob", true, map[string]string{"environments/app.yaml": tpl + appFile("three")})
	eventually(t, "app-pr-3 converged", func() bool { return w.hostFile("pr3-web", "/etc/app.conf") == "three" })
	w.r.endPreview("app-pr-3", "pull request 3 closed")
	w.r.endPreview("app-pr-3", "time to live ran out")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "app-pr-3's hosts destroyed", func() bool { return strings.Contains(readLog(t, destroyed), "app-pr-3") })
	time.Sleep(100 * time.Millisecond) // a second destroy would have run by now
	if n := strings.Count(readLog(t, destroyed), "app-pr-3\n"); n != 1 {
		t.Errorf("destroy ran %d times, want once", n)
	}
	if st := w.state("app-pr-3"); !strings.Contains(st.LastError, "pull request 3 closed") {
		t.Errorf("ended because %q, want the first reason", st.LastError)
	}
}
