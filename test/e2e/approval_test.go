package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// logLine reports whether one line of log holds every one of wants.
func logLine(log string, wants ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// giteaComment posts Gitea's signed issue_comment delivery of a new pull
// request comment.
func giteaComment(t testing.TB, target string, secret []byte, repoURL string, pr int, login, text string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"action":     "created",
		"is_pull":    true,
		"issue":      map[string]any{"number": pr, "pull_request": map[string]any{"merged": false}},
		"comment":    map[string]any{"body": text, "user": map[string]any{"login": login, "username": login}},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if err := postHook(target, "gitea", map[string]string{"X-Gitea-Event": "issue_comment", "X-Gitea-Delivery": deliveryID(),
		"X-Gitea-Signature": hex.EncodeToString(mac.Sum(nil))}, body); err != nil {
		t.Fatal(err)
	}
}

// gitlabNote posts GitLab's Note Hook of a new merge request comment,
// with the token; lastCommit is the commit the payload names.
func gitlabNote(t testing.TB, target string, token []byte, repoURL string, mr int, login, text, lastCommit string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"object_kind":       "note",
		"user":              map[string]any{"username": login},
		"project":           map[string]any{"path_with_namespace": "team/infra", "git_http_url": repoURL},
		"object_attributes": map[string]any{"note": text, "noteable_type": "MergeRequest"},
		"merge_request":     map[string]any{"iid": mr, "last_commit": map[string]any{"id": lastCommit}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postHook(target, "gitlab", map[string]string{"X-Gitlab-Event": "Note Hook", "X-Gitlab-Event-UUID": deliveryID(),
		"X-Gitlab-Token": string(token)}, body); err != nil {
		t.Fatal(err)
	}
}

// githubComment posts GitHub's signed issue_comment delivery of a new
// pull request comment.
func githubComment(t testing.TB, target string, secret []byte, repoURL string, pr int, login, text string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"action":     "created",
		"issue":      map[string]any{"number": pr, "pull_request": map[string]any{"url": "x"}},
		"comment":    map[string]any{"body": text, "user": map[string]any{"login": login}},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postGitHub(target, "issue_comment", body, secret); err != nil {
		t.Fatal(err)
	}
}

// TestCommentDecisionsEveryProvider is issue 16's pull request comment
// decisions on the built daemon, the real Git server and a real SSH host,
// through each provider's own webhook (GitHub's and Gitea's signed
// issue_comment, GitLab's token-checked Note Hook), with GitHub feedback
// to a fake of its documented API:
//   - a gated environment's preview comment says what its gates ask and
//     how to approve;
//   - a merged commit awaiting approval gets its plan and how to approve
//     in the plan comment of the pull request that brought it;
//   - `/driftless reject prod` from a login not listed is refused, from an
//     approver rejects the pull request's head and so its merge commit
//     (history says who and when; the host never gets it);
//   - a Gitea approval from a login not listed is refused, from an approver
//     (on the merged pull request) lets the commit through;
//   - a GitLab approval counts for the merge request's head read from the
//     Git server, not for the commit the payload names.
func TestCommentDecisionsEveryProvider(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts an SSH host; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	prod := lab.Kind1("prod-1")
	bin, _ := buildBinaries(t, false)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("e2e-github-secret")
	giteaSecret, gitlabToken := []byte("e2e-gitea-secret"), []byte("e2e-gitlab-token")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	env := func(content string) map[string]string {
		return map[string]string{"environments/prod.yaml": oneFileEnv("prod", prod, content, "approval: {required: true, approvers: [alice]}\n")}
	}
	v0 := work.Commit(t, env("v0"), "v0")
	work.Push(t)

	gh := newFakeGitHub(t)
	cfgPath := daemonConfig(t, lab, repoURL, secret, driftInterval)
	dir := filepath.Dir(cfgPath)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const approveTok = "approve-e2e-token"
	extra := fmt.Sprintf(`feedback:
  github:
    base_url: %s
    token: {file: %s}
    repository: team/infra
api:
  tokens:
    - {name: release-manager, sha256: %s, scopes: [approve]}
`, gh.srv.URL, writeFile(t, dir, "github.token", "ghs-test-token\n", 0o600), sha(approveTok))
	hooks := fmt.Sprintf("webhooks:\n  gitea: {file: %s}\n  gitlab: {file: %s}\n",
		writeFile(t, dir, "gitea.secret", string(giteaSecret)+"\n", 0o600), writeFile(t, dir, "gitlab.token", string(gitlabToken)+"\n", 0o600))
	cfg = []byte(strings.Replace(string(cfg), "webhooks:\n", hooks, 1) + extra)
	writeFile(t, dir, "driftless.yaml", string(cfg), 0o644)
	d := startDaemon(t, bin, cfgPath)
	hook.setTarget(d.URL)
	prodFile := func() string {
		b, err := os.ReadFile(filepath.Join(prod.Root, "etc/prod.conf"))
		if err != nil {
			return "<absent>"
		}
		return string(b)
	}
	waitGate(t, d, "prod", v0, "awaiting_approval", time.Minute)
	if code, body := post(t, d, "/api/v1/environments/prod/approve", approveTok, `{"revision": "`+v0+`"}`); code != http.StatusOK {
		t.Fatalf("approve v0: %d %s", code, body)
	}
	waitApplied(t, d, "prod", v0)

	// GitHub: the preview comment of pull request 1 says what prod's gates ask.
	work.Checkout(t, "pr-1")
	v1 := work.Commit(t, env("v1"), "v1 in pull request 1")
	work.PushRef(t, "refs/pull/1/head")
	opened, err := json.Marshal(map[string]any{
		"action": "opened", "number": 1,
		"pull_request": map[string]any{
			"number": 1, "merged": false, "user": map[string]any{"login": "bob"},
			"head": map[string]any{"sha": v1, "ref": "pr-1", "repo": map[string]any{"full_name": "team/infra"}},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "team/infra"}},
		},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postGitHub(d.URL, "pull_request", opened, secret); err != nil {
		t.Fatal(err)
	}
	comment := func(what string, pr int, wants ...string) string {
		t.Helper()
		var found string
		waitFor(t, time.Minute, 200*time.Millisecond, what, func() error {
			for _, b := range gh.received() {
				if !strings.HasPrefix(b, fmt.Sprintf("POST /api/v3/repos/team/infra/issues/%d/comments\n", pr)) {
					continue
				}
				ok := true
				for _, w := range wants {
					ok = ok && strings.Contains(b, w)
				}
				if ok {
					found = b
					return nil
				}
			}
			return fmt.Errorf("no comment on pull request %d with %q among %d requests", pr, wants, len(gh.received()))
		})
		return found
	}
	comment("the preview comment to name prod's gates", 1, "<b>approval</b> before it is applied to <b>prod</b>",
		"an approver (alice) comments `/driftless approve prod`")

	// Pull request 1 is merged with a merge commit onto the unchanged base;
	// the merge awaits approval, and its plan goes to pull request 1.
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--no-ff", "-m", "merge pull request 1", "pr-1")
	m1 := work.Head(t)
	gh.setPulls(m1, 1)
	work.Push(t)
	waitGate(t, d, "prod", m1, "awaiting_approval", time.Minute)
	comment("the plan awaiting approval on pull request 1", 1, "awaits approval", "Commit <code>"+m1[:7]+"</code> passed its promotion rules",
		"<code>file:/etc/prod.conf</code>", "`/driftless approve prod`", "`driftless approve prod "+m1[:7]+"`")

	// GitHub comment rejection: another login is refused, alice rejects.
	githubComment(t, d.URL, secret, repoURL, 1, "mallory", "/driftless reject prod")
	waitFor(t, 30*time.Second, 100*time.Millisecond, "mallory's rejection to be refused", func() error {
		if !strings.Contains(d.Log(), "comment rejection refused") {
			return fmt.Errorf("not logged yet")
		}
		return nil
	})
	if st, err := d.gates("prod"); err != nil || st.State != "awaiting_approval" {
		t.Fatalf("prod after mallory's rejection: %+v %v", st, err)
	}
	// Alice's rejection names the pull request's head, v1; the merge that
	// brings exactly v1 is rejected with it.
	githubComment(t, d.URL, secret, repoURL, 1, "alice", "Not now.\n/driftless reject prod")
	waitGate(t, d, "prod", m1, "rejected", 30*time.Second)
	runs, err := d.history("prod")
	if err != nil {
		t.Fatal(err)
	}
	if r := runs[0]; r.Revision.Commit != v1 || r.Result != "rejected" || r.Decision == nil || r.Decision.By != "github:alice" || r.Decision.PullRequest != 1 {
		t.Fatalf("history does not record alice's rejection of v1: %+v", r)
	}
	if code, page, err := httpGet(context.Background(), d.URL+"/environments/prod"); err != nil || code != http.StatusOK ||
		!strings.Contains(string(page), "rejected</span> by github:alice (github)") {
		t.Errorf("the status page does not show alice's rejection: %d %v\n%s", code, err, page)
	}

	// Gitea: mallory's approval is refused; alice's on the merged pull
	// request lets the commit through.
	work.Checkout(t, "pr-2")
	v2 := work.Commit(t, env("v2"), "v2 in pull request 2")
	work.PushRef(t, "refs/pull/2/head")
	giteaComment(t, d.URL, giteaSecret, repoURL, 2, "mallory", "/driftless approve prod")
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--ff-only", "pr-2")
	work.Push(t)
	waitGate(t, d, "prod", v2, "awaiting_approval", time.Minute)
	if got := prodFile(); got != "v0\n" {
		t.Fatalf("prod host has %q, want v0's content", got)
	}
	giteaComment(t, d.URL, giteaSecret, repoURL, 2, "alice", "/driftless approve prod")
	waitApplied(t, d, "prod", v2)
	if got := prodFile(); got != "v2\n" {
		t.Fatalf("prod host has %q after alice's Gitea approval", got)
	}
	if runs, err = d.history("prod"); err != nil || runs[0].Decision == nil || runs[0].Decision.By != "gitea:alice" || runs[0].Decision.PullRequest != 2 {
		t.Fatalf("prod's run of v2 does not name alice's Gitea approval: %+v %v", runs[0], err)
	}

	// GitLab: the Note Hook names v2 as the merge request's last commit;
	// the approval is for the head the Git server has, v3.
	work.Checkout(t, "pr-3")
	v3 := work.Commit(t, env("v3"), "v3 in merge request 3")
	work.PushRef(t, "refs/merge-requests/3/head")
	gitlabNote(t, d.URL, gitlabToken, repoURL, 3, "mallory", "/driftless approve prod", v3)
	gitlabNote(t, d.URL, gitlabToken, repoURL, 3, "alice", "/driftless approve prod", v2)
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--ff-only", "pr-3")
	work.Push(t)
	waitApplied(t, d, "prod", v3)
	if runs, err = d.history("prod"); err != nil || runs[0].Decision == nil || runs[0].Decision.By != "gitlab:alice" || runs[0].Decision.PullRequest != 3 {
		t.Fatalf("prod's run of v3 does not name alice's GitLab approval: %+v %v", runs[0], err)
	}
	for _, provider := range []string{"gitea", "gitlab"} {
		if !logLine(d.Log(), "comment approval refused", `"provider":"`+provider+`"`, `"by":"mallory"`) {
			t.Errorf("the daemon did not log the refusal of mallory's %s approval", provider)
		}
	}
	if runsOf(t, d, "prod", v1) != 1 || runsOf(t, d, "prod", m1) != 0 || strings.Contains(prodFile(), "v1") {
		t.Error("the rejected v1 was applied")
	}
	hook.check(t)
}
