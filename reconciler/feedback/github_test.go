package feedback

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sha = "0123456789abcdef0123456789abcdef01234567"

// fastBackoff keeps retried tests quick while still waiting between attempts.
var fastBackoff = kit.Backoff{Attempts: 3, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}

func newTestGitHub(t *testing.T, prefix string, deployments bool) (*fakeHost, *GitHub) {
	t.Helper()
	f, srv := newFakeGitHub(t, prefix)
	cfg := HostAPIConfig{Token: "s3cret", Repository: "ops/infra", Deployments: deployments}
	g, err := NewGitHub(cfg, Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	// The public API's base is replaced by the test server's, as Enterprise's would be but without /api/v3/.
	if prefix == "" {
		u := srv.URL + "/"
		g.client.BaseURL, _ = g.client.BaseURL.Parse(u)
	} else {
		cfg.BaseURL = srv.URL
		if g, err = NewGitHub(cfg, Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))}); err != nil {
			t.Fatal(err)
		}
	}
	return f, g
}

func report(st, desc string) status.Report {
	return status.Report{Environment: "staging", Commit: sha, Status: st, Description: desc,
		URL: "http://driftless.test/environments/staging", Time: time.Now()}
}

func TestGitHubCommitStatusAndDeployment(t *testing.T) {
	for _, prefix := range []string{"", "/api/v3"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			f, g := newTestGitHub(t, prefix, true)
			ctx := context.Background()
			g.Report(ctx, report(status.StatusPending, "applying 3 changes"))
			g.Report(ctx, report(status.StatusSuccess, "applied 3 changes on 2 hosts"))

			st := f.got("POST " + prefix + "/repos/ops/infra/statuses/" + sha)
			if len(st) != 2 {
				t.Fatalf("commit statuses: got %d, want 2", len(st))
			}
			for i, want := range []string{"pending", "success"} {
				b := st[i].Body
				if b["state"] != want || b["context"] != "driftless/staging" || b["target_url"] != "http://driftless.test/environments/staging" {
					t.Errorf("status %d: %v", i, b)
				}
				if got := st[i].Header.Get("Authorization"); got != "Bearer s3cret" {
					t.Errorf("status %d: Authorization %q", i, got)
				}
			}
			if st[1].Body["description"] != "applied 3 changes on 2 hosts" {
				t.Errorf("description: %v", st[1].Body["description"])
			}
			created := f.got("POST " + prefix + "/repos/ops/infra/deployments")
			var deploys []request
			for _, r := range created {
				if strings.HasSuffix(r.Path, "/deployments") {
					deploys = append(deploys, r)
				}
			}
			if len(deploys) != 1 {
				t.Fatalf("deployments created: %d, want 1", len(deploys))
			}
			d := deploys[0].Body
			if d["ref"] != sha || d["environment"] != "staging" || d["auto_merge"] != false {
				t.Errorf("deployment request: %v", d)
			}
			if rc, ok := d["required_contexts"].([]any); !ok || len(rc) != 0 {
				t.Errorf("required_contexts must be sent empty: %#v", d["required_contexts"])
			}
			id := f.deployments[0]["id"]
			ds := f.got(fmt.Sprintf("POST %s/repos/ops/infra/deployments/%v/statuses", prefix, id))
			if len(ds) != 2 {
				t.Fatalf("deployment statuses on %v: %d, want 2", id, len(ds))
			}
			for i, want := range []string{"in_progress", "success"} {
				if ds[i].Body["state"] != want || ds[i].Body["environment_url"] != "http://driftless.test/environments/staging" {
					t.Errorf("deployment status %d: %v", i, ds[i].Body)
				}
			}
		})
	}
}

func TestGitHubRolledBackIsFailure(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	// No pending first: as after a restart, the deployment is looked up, then created.
	g.Report(context.Background(), report(status.StatusRolledBack, "verification failed: http://web-1/healthz 503"))
	st := f.got("POST /repos/ops/infra/statuses/")
	if len(st) != 1 || st[0].Body["state"] != "failure" {
		t.Fatalf("statuses: %+v", st)
	}
	if d, _ := st[0].Body["description"].(string); !strings.HasPrefix(d, "rolled back: verification failed") {
		t.Errorf("description %q does not say it was rolled back", d)
	}
	if n := len(f.got("GET /repos/ops/infra/deployments")); n != 1 {
		t.Errorf("deployment lookups: %d, want 1", n)
	}
	ds := f.got("/statuses")
	if last := ds[len(ds)-1]; !strings.Contains(last.Path, "/deployments/") || last.Body["state"] != "failure" {
		t.Errorf("last request: %s %v", last.Path, last.Body)
	}
}

func TestGitHubReusesListedDeployment(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	ctx := context.Background()
	g.Report(ctx, report(status.StatusPending, "applying"))
	// A new reporter (a restarted daemon) must find the deployment, not add one.
	g2 := &GitHub{client: g.client, owner: "ops", repo: "infra", deployments: true, backoff: fastBackoff,
		log: zerolog.Nop(), deploys: map[string]int64{}, locks: map[string]*keyLock{}}
	g2.Report(ctx, report(status.StatusSuccess, "applied"))
	if len(f.deployments) != 1 {
		t.Fatalf("deployments: %d, want 1", len(f.deployments))
	}
	if n := len(f.got(fmt.Sprintf("/deployments/%v/statuses", f.deployments[0]["id"]))); n != 2 {
		t.Errorf("statuses on the one deployment: %d, want 2", n)
	}
}

func TestGitHubRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		wantCalls int
	}{
		{"two 500 then success", 2, 3},
		{"always 500 stops after the attempts", 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, g := newTestGitHub(t, "", false)
			f.failNext("POST /repos/ops/infra/statuses/"+sha, tt.failures, http.StatusInternalServerError)
			g.Report(context.Background(), report(status.StatusSuccess, "ok"))
			if n := len(f.got("POST /repos/ops/infra/statuses/")); n != tt.wantCalls {
				t.Errorf("calls: %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestGitHubPermanentErrorNotRetried(t *testing.T) {
	f, g := newTestGitHub(t, "", false)
	// A status GitHub refuses (422, as for more than 1,000 statuses on a
	// commit) stays refused: retrying cannot help.
	f.failNext("POST /repos/ops/infra/statuses/"+sha, 10, http.StatusUnprocessableEntity)
	g.Report(context.Background(), report(status.StatusSuccess, "ok"))
	if n := len(f.got("POST /repos/ops/infra/statuses/")); n != 1 {
		t.Errorf("calls: %d, want 1", n)
	}
}

func TestGitHubIgnoresDriftAndReturnsOnTimeout(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	g.Report(context.Background(), report(status.StatusDrift, "2 resources drifted"))
	if got := f.got(""); len(got) != 0 {
		t.Errorf("drift made requests: %+v", got)
	}
	f.failNext("POST /repos/ops/infra/statuses/"+sha, 1000, http.StatusBadGateway)
	g.backoff = kit.Backoff{Attempts: 1000, Initial: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	g.Report(ctx, report(status.StatusSuccess, "ok"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Report took %v past its context", d)
	}
}

func TestGitHubDescriptionLimit(t *testing.T) {
	f, g := newTestGitHub(t, "", false)
	g.Report(context.Background(), report(status.StatusFailure, strings.Repeat("é ", 200)))
	st := f.got("POST /repos/ops/infra/statuses/")
	d, _ := st[0].Body["description"].(string)
	if n := utf8.RuneCountInString(d); n > 140 || n < 130 {
		t.Errorf("description has %d characters: %q", n, d)
	}
}

func previewReport(env string, changes ...targets.Change) status.Report {
	r := report(status.StatusPreview, "")
	r.Environment, r.PullRequest = env, 7
	r.Plan = &status.Plan{Environment: env, Commit: sha, Hosts: []status.HostPlan{{Host: "web-1", Changes: changes}}}
	return r
}

func TestGitHubPlanCommentEditedInPlace(t *testing.T) {
	f, g := newTestGitHub(t, "", false)
	// 130 comments by people put the earlier plan comment on the second page.
	for i := range 130 {
		f.addComment(7, fmt.Sprintf("comment %d; quoting:\n> %s", i, planMarker("staging")))
	}
	ctx := context.Background()
	diff := "--- a/etc/app.conf\n+++ b/etc/app.conf\n@@ -1 +1 @@\n-port=80\n+port=8080\n"
	g.Report(ctx, previewReport("staging", targets.Change{ID: "file:/etc/app.conf", Kind: "file", Action: targets.Update, Diff: diff}))
	posts := f.got("POST /repos/ops/infra/issues/7/comments")
	if len(posts) != 1 {
		t.Fatalf("comments created: %d, want 1", len(posts))
	}
	first, _ := posts[0].Body["body"].(string)
	for _, want := range []string{planMarker("staging"), "```diff\n" + diff + "```", "<details>", "1 to update"} {
		if !strings.Contains(first, want) {
			t.Errorf("comment lacks %q:\n%s", want, first)
		}
	}
	if lists := f.got("GET /repos/ops/infra/issues/7/comments"); len(lists) != 2 {
		t.Errorf("list pages read: %d, want 2", len(lists))
	}

	g.Report(ctx, previewReport("staging", targets.Change{ID: "package:nginx", Kind: "package", Action: targets.Create}))
	if n := len(f.got("POST /repos/ops/infra/issues/7/comments")); n != 1 {
		t.Errorf("second preview added a comment: %d created", n)
	}
	patches := f.got("PATCH /repos/ops/infra/issues/comments/")
	if len(patches) != 1 {
		t.Fatalf("edits: %d, want 1", len(patches))
	}
	want := fmt.Sprintf("/repos/ops/infra/issues/comments/%v", f.comments[7][130]["id"])
	if patches[0].Path != want {
		t.Errorf("edited %s, want %s", patches[0].Path, want)
	}
	if b, _ := patches[0].Body["body"].(string); !strings.Contains(b, "package:nginx") || strings.Contains(b, "etc/app.conf") {
		t.Errorf("edited body:\n%s", b)
	}

	// Another environment has its own comment on the same pull request.
	g.Report(ctx, previewReport("prod", targets.Change{ID: "package:nginx", Kind: "package", Action: targets.Create}))
	if n := len(f.got("POST /repos/ops/infra/issues/7/comments")); n != 2 {
		t.Errorf("comments created after prod's preview: %d, want 2", n)
	}
}

func TestGitHubConcurrentPreviewsMakeOneComment(t *testing.T) {
	f, g := newTestGitHub(t, "", false)
	done := make(chan struct{})
	for range 4 {
		go func() {
			g.Report(context.Background(), previewReport("staging", targets.Change{ID: "package:nginx", Action: targets.Create}))
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	if n := len(f.got("POST /repos/ops/infra/issues/7/comments")); n != 1 {
		t.Errorf("comments created: %d, want 1", n)
	}
	if n := len(f.got("PATCH ")); n != 3 {
		t.Errorf("edits: %d, want 3", n)
	}
}

func TestGitHubDeletedPlanCommentIsReplaced(t *testing.T) {
	f, g := newTestGitHub(t, "", false)
	ctx := context.Background()
	g.Report(ctx, previewReport("staging", targets.Change{ID: "package:nginx", Action: targets.Create}))
	// The comment disappears after it is listed: its edit answers 404.
	f.failNext(fmt.Sprintf("PATCH /repos/ops/infra/issues/comments/%v", f.comments[7][0]["id"]), 1, http.StatusNotFound)
	g.Report(ctx, previewReport("staging", targets.Change{ID: "package:curl", Action: targets.Create}))
	posts := f.got("POST /repos/ops/infra/issues/7/comments")
	if len(posts) != 2 || len(f.got("PATCH ")) != 1 {
		t.Fatalf("creates %d, edits %d; want 2 and 1", len(posts), len(f.got("PATCH ")))
	}
	if b, _ := posts[1].Body["body"].(string); !strings.Contains(b, "package:curl") {
		t.Errorf("new comment:\n%s", b)
	}
}

// TestSourceFilter builds GitHub feedback from a config that names its
// source: reports of that source's revisions reach the host, those of
// another source (a second repository, a local folder) do not.
func TestSourceFilter(t *testing.T) {
	f, srv := newFakeGitHub(t, "/api/v3")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Feedback{GitHub: &config.HostAPI{BaseURL: srv.URL, Token: config.Secret{File: tokenFile}, Repository: "ops/infra", Source: "infra"}}
	rps, err := New(cfg, Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil || len(rps) != 1 {
		t.Fatalf("New: %d reporters, %v", len(rps), err)
	}
	for _, src := range []string{"dev-folder", "infra", "other-repo"} {
		r := report(status.StatusSuccess, "from "+src)
		r.Source = src
		rps[0].Report(context.Background(), r)
	}
	st := f.got("POST /api/v3/repos/ops/infra/statuses/" + sha)
	if len(st) != 1 || st[0].Body["description"] != "from infra" {
		t.Fatalf("statuses posted: %v, want only the one of source infra", st)
	}
}

// TestGitHubGatedDeploymentQueued: a revision held at a gate keeps its
// deployment queued (its commit status pending) until it proceeds.
func TestGitHubGatedDeploymentQueued(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	ctx := context.Background()
	held := report(status.StatusPending, "awaiting approval of 0123456789ab")
	held.Gate = status.StateAwaitingApproval
	g.Report(ctx, held)
	g.Report(ctx, report(status.StatusPending, "applying to 1 host(s)"))
	g.Report(ctx, report(status.StatusSuccess, "applied 1 change(s)"))
	if st := f.got("POST /repos/ops/infra/statuses/"); len(st) != 3 || st[0].Body["state"] != "pending" || st[0].Body["description"] != "awaiting approval of 0123456789ab" {
		t.Fatalf("commit statuses: %+v", st)
	}
	if len(f.deployments) != 1 {
		t.Fatalf("deployments: %d, want 1", len(f.deployments))
	}
	ds := f.got(fmt.Sprintf("POST /repos/ops/infra/deployments/%v/statuses", f.deployments[0]["id"]))
	var states []string
	for _, d := range ds {
		states = append(states, fmt.Sprint(d.Body["state"]))
	}
	if strings.Join(states, ",") != "queued,in_progress,success" {
		t.Fatalf("deployment states %v, want queued, in_progress, success", states)
	}
}

// TestGitHubPlanAwaitingApprovalComment: the preview of a gated
// environment says what its gates ask and how to approve; once the merged
// commit awaits approval, the plan comment of the pull request GitHub
// associates with the commit is edited to show the plan awaiting approval
// and how to approve it. An environment without gates says nothing of them.
func TestGitHubPlanAwaitingApprovalComment(t *testing.T) {
	f, g := newTestGitHub(t, "/api/v3", false)
	ctx := context.Background()
	gates := &status.GateInfo{PromoteFrom: []string{"staging"}, Soak: 15 * time.Minute, Approval: true, Approvers: []string{"alice"}}
	change := targets.Change{ID: "file:/etc/app.conf", Kind: "file", Action: targets.Update}
	pr := previewReport("prod", change)
	pr.Gates = gates
	g.Report(ctx, pr)
	g.Report(ctx, previewReport("staging", change))
	posts := f.got("POST /api/v3/repos/ops/infra/issues/7/comments")
	if len(posts) != 2 {
		t.Fatalf("comments created: %d, want 2", len(posts))
	}
	preview, _ := posts[0].Body["body"].(string)
	for _, want := range []string{
		"**Gates:** once merged, the revision waits for promotion from staging (verified there and kept good for 15m0s), then <b>approval</b> before it is applied to <b>prod</b>.",
		"an approver (alice) comments `/driftless approve prod` on this pull request; `/driftless reject prod` rejects",
	} {
		if !strings.Contains(preview, want) {
			t.Errorf("prod's preview comment lacks %q:\n%s", want, preview)
		}
	}
	if b, _ := posts[1].Body["body"].(string); strings.Contains(b, "Gates") || strings.Contains(b, "approve") {
		t.Errorf("staging has no gates, yet its comment speaks of them:\n%s", b)
	}

	// The commit merged by pull request 7 awaits approval on prod.
	f.mu.Lock()
	f.pulls[sha] = []int{7}
	f.mu.Unlock()
	held := report(status.StatusPending, "awaiting approval")
	held.Environment, held.Gate, held.Gates = "prod", status.StateAwaitingApproval, gates
	held.Plan = &status.Plan{Environment: "prod", Commit: sha, Hosts: []status.HostPlan{{Host: "prod-1", Changes: []targets.Change{change}}}}
	g.Report(ctx, held)
	if n := len(f.got("GET /api/v3/repos/ops/infra/commits/" + sha + "/pulls")); n != 1 {
		t.Fatalf("pull requests of the commit listed %d times, want 1", n)
	}
	if n := len(f.got("POST /api/v3/repos/ops/infra/issues/7/comments")); n != 2 {
		t.Errorf("comments created: %d, want prod's preview comment edited instead", n)
	}
	patches := f.got("PATCH /api/v3/repos/ops/infra/issues/comments/")
	if len(patches) != 1 || patches[0].Path != fmt.Sprintf("/api/v3/repos/ops/infra/issues/comments/%v", f.comments[7][0]["id"]) {
		t.Fatalf("edits %+v, want prod's comment edited once", patches)
	}
	body, _ := patches[0].Body["body"].(string)
	for _, want := range []string{
		planMarker("prod"),
		"### driftless: <code>prod</code> awaits approval",
		"Commit <code>0123456</code> passed its promotion rules and deploy windows; it is applied to <b>prod</b> once approved.",
		"**Plan:** 0 to create, 1 to update, 0 to delete, 0 unchanged on 1 host.",
		"<code>file:/etc/app.conf</code>",
		"comments `/driftless approve prod`",
		"Naming the commit, `/driftless approve prod 0123456`, approves it only while it is the head",
		"`driftless approve prod 0123456`",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the comment awaiting approval lacks %q:\n%s", want, body)
		}
	}
	// A commit no pull request brought gets no comment.
	other := held
	other.Commit = strings.Repeat("f", 40)
	before := len(f.got("/issues/"))
	g.Report(ctx, other)
	if n := len(f.got("/issues/")) - before; n != 0 {
		t.Errorf("requests about comments: %d, want none for a commit without a pull request", n)
	}
}

// TestGitHubPreviewEnvironmentDeployment: a pull request's preview
// environment has its own Deployment (environment app-pr-7): queued while
// awaiting approval, success once applied, inactive once torn down.
func TestGitHubPreviewEnvironmentDeployment(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	ctx := context.Background()
	rep := func(st, desc string) status.Report {
		r := report(st, desc)
		r.Environment, r.URL = "app-pr-7", "http://driftless.test/environments/app-pr-7"
		return r
	}
	held := rep(status.StatusPending, "awaiting approval of 0123456789ab")
	held.Gate = status.StateAwaitingApproval
	g.Report(ctx, held)
	g.Report(ctx, rep(status.StatusSuccess, "applied 1 change(s)"))
	gone := rep(status.StatusRemoved, "preview removed: pull request 7 closed")
	gone.PullRequest = 7
	g.Report(ctx, gone)
	if len(f.deployments) != 1 || f.deployments[0]["environment"] != "app-pr-7" {
		t.Fatalf("deployments: %+v, want one of app-pr-7", f.deployments)
	}
	var states []string
	for _, d := range f.got(fmt.Sprintf("POST /repos/ops/infra/deployments/%v/statuses", f.deployments[0]["id"])) {
		states = append(states, fmt.Sprint(d.Body["state"]))
		if d.Body["environment_url"] != "http://driftless.test/environments/app-pr-7" {
			t.Errorf("deployment status links %v", d.Body["environment_url"])
		}
	}
	if strings.Join(states, ",") != "queued,success,inactive" {
		t.Fatalf("deployment states %v, want queued, success, inactive", states)
	}
	if st := f.got("POST /repos/ops/infra/statuses/"); len(st) != 2 || st[0].Body["context"] != "driftless/app-pr-7" {
		t.Fatalf("commit statuses: %+v, want the two before the removal", st)
	}
}
