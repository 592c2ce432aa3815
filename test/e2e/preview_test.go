package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// fakeGitHub answers the few calls of GitHub's REST API that the daemon's
// feedback makes (as documented: statuses, issue comments, the pull
// requests associated with a commit), under an Enterprise base URL, and
// keeps every body it received.
type fakeGitHub struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	// pulls are the pull requests associated with a commit.
	pulls map[string][]int
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	g := &fakeGitHub{pulls: map[string][]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		g.mu.Lock()
		g.bodies = append(g.bodies, r.Method+" "+r.URL.Path+"\n"+string(b))
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/comments"):
			_, _ = io.WriteString(w, "[]")
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/commits/") && strings.HasSuffix(r.URL.Path, "/pulls"):
			sha := strings.TrimSuffix(r.URL.Path[strings.Index(r.URL.Path, "/commits/")+len("/commits/"):], "/pulls")
			g.mu.Lock()
			var prs []map[string]any
			for _, n := range g.pulls[sha] {
				prs = append(prs, map[string]any{"number": n, "state": "closed"})
			}
			g.mu.Unlock()
			_ = json.NewEncoder(w).Encode(append([]map[string]any{}, prs...))
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id": 1}`)
		default:
			_, _ = io.WriteString(w, "{}")
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// setPulls associates pull requests with a commit, as a merge does.
func (g *fakeGitHub) setPulls(sha string, prs ...int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pulls[sha] = prs
}

// received returns every request body received so far, each after its
// method and path.
func (g *fakeGitHub) received() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.bodies...)
}

// TestPullRequestPreviewRunsNothingAndPublishesNothing is issue 10's
// acceptance for points 1 and 2, attacked as a pull request author would:
// a branch declares a command whose unless guard writes a marker file on
// the host, and a file at the path of a host-only key. A signed
// pull_request webhook makes the daemon preview it. The guard must not
// have run (no marker on the host), and nothing the Git host received may
// contain the key's content; the plan comment must say the command would
// run without having evaluated its guard.
func TestPullRequestPreviewRunsNothingAndPublishesNothing(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts a test host; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("web-1")
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	hostOnly := "HOST-ONLY-" + hex.EncodeToString(nonce)
	// World-readable on the host: only the default (summaries, no diffs)
	// keeps it out of the comment.
	if err := os.MkdirAll(filepath.Join(h.Root, "etc", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(h.Root, "etc", "app"), "host-only.key", hostOnly+"\n", 0o644)
	const guardMarker = "/root/preview-guard-ran"

	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	base := fmt.Sprintf("environment: prod\nhosts:\n  - name: %s\n    address: %s\n    resources:\n      - directory: /srv/app\n", h.Name, h.Address)
	v0 := work.Commit(t, map[string]string{"environments/prod.yaml": base}, "declare the host")
	work.Push(t)

	gh := newFakeGitHub(t)
	secret := []byte("e2e-webhook-secret")
	cfgPath := daemonConfig(t, lab, repoURL, secret, time.Hour)
	dir := filepath.Dir(cfgPath)
	token := writeFile(t, dir, "github.token", "ghs-test-token\n", 0o600)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("feedback:\n  github:\n    base_url: %s\n    token: {file: %s}\n    repository: team/infra\n", gh.srv.URL, token)...)
	writeFile(t, dir, "driftless.yaml", string(cfg), 0o644)
	bin, _ := buildBinaries(t, false)
	d := startDaemon(t, bin, cfgPath)
	waitApplied(t, d, "prod", v0)

	work.Checkout(t, "feature")
	attack := base + `      - command: take-the-host
        run: "true"
        unless: "id > ` + guardMarker + `; false"
      - file: /etc/app/host-only.key
        content: "replaced\n"
`
	head := work.Commit(t, map[string]string{"environments/prod.yaml": attack}, "innocent change")
	work.Push(t)
	work.PushRef(t, "refs/pull/5/head")
	comment := previewPullRequest(t, d, gh, secret, repoURL, head, "mallory")
	if _, err := os.Lstat(filepath.Join(h.Root, guardMarker)); err == nil {
		t.Errorf("the preview ran the pull request's unless guard on the host: %s exists", guardMarker)
	}
	for _, b := range gh.received() {
		if strings.Contains(b, hostOnly) {
			t.Errorf("the Git host received the host-only content:\n%s", b)
		}
	}
	if !strings.Contains(comment, "would run (not evaluated in a preview)") {
		t.Errorf("the comment does not say the command's guard was not evaluated:\n%s", comment)
	}
	if !strings.Contains(comment, "content: ") || !strings.Contains(comment, "hmac ") {
		t.Errorf("the comment does not summarise the file's change:\n%s", comment)
	}
	if got, err := os.ReadFile(filepath.Join(h.Root, "etc", "app", "host-only.key")); err != nil || string(got) != hostOnly+"\n" {
		t.Errorf("the preview changed the host's file: %q, %v", got, err)
	}
}

// previewPullRequest opens pull request 5 of team/infra with a signed
// pull_request webhook (head pushed by the caller on branch feature) and
// returns the plan comment the daemon then posts to the fake GitHub.
func previewPullRequest(t testing.TB, d *daemon, gh *fakeGitHub, secret []byte, repoURL, head, login string) string {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"action": "opened", "number": 5,
		"pull_request": map[string]any{
			"number": 5, "merged": false,
			"user": map[string]any{"login": login},
			"head": map[string]any{"sha": head, "ref": "feature", "repo": map[string]any{"full_name": "team/infra"}},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "team/infra"}},
		},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postGitHub(d.URL, "pull_request", payload, secret); err != nil {
		t.Fatal(err)
	}
	var comment string
	waitFor(t, 2*time.Minute, 200*time.Millisecond, "the plan comment on pull request 5", func() error {
		for _, b := range gh.received() {
			if strings.HasPrefix(b, "POST /api/v3/repos/team/infra/issues/5/comments") {
				comment = b
				return nil
			}
		}
		return fmt.Errorf("received %d requests, no comment yet", len(gh.received()))
	})
	return comment
}
