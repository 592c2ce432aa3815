package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/need"
)

// nativePush builds the push payload each provider would send for one ref
// change of the real Git server, with the event header line to send it with.
func nativePush(endpoint, cloneURL string, ev gitserver.PushEvent) (string, []byte) {
	var line string
	var v any
	switch endpoint {
	case "github":
		line = "X-GitHub-Event: push"
		v = map[string]any{"ref": ev.Ref, "before": ev.Before, "after": ev.After, "deleted": ev.Deleted(),
			"repository": map[string]any{"full_name": "team/" + ev.Repo, "clone_url": cloneURL}}
	case "gitea":
		line = "X-Gitea-Event: push"
		v = map[string]any{"ref": ev.Ref, "before": ev.Before, "after": ev.After,
			"repository": map[string]any{"full_name": "team/" + ev.Repo, "clone_url": cloneURL}}
	case "gitlab":
		line = "X-Gitlab-Event: Push Hook"
		v = map[string]any{"object_kind": "push", "ref": ev.Ref, "before": ev.Before, "after": ev.After,
			"project": map[string]any{"path_with_namespace": "team/" + ev.Repo, "git_http_url": cloneURL}}
	case "bitbucket":
		line = "X-Event-Key: repo:refs_changed"
		v = map[string]any{"eventKey": "repo:refs_changed",
			"repository": map[string]any{"slug": ev.Repo, "project": map[string]any{"key": "TEAM"},
				"links": map[string]any{"clone": []any{map[string]any{"href": cloneURL, "name": "http"}}}},
			"changes": []any{map[string]any{"refId": ev.Ref, "fromHash": ev.Before, "toHash": ev.After, "type": "UPDATE"}}}
	case "generic":
		line = "Content-Type: application/json"
		v = map[string]any{"repository": "team/" + ev.Repo, "ref": ev.Ref, "commit": ev.After, "clone_url": cloneURL}
	}
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return line, body
}

// TestPushToRealGitServerTriggersFetch runs the whole chain with real parts:
// a push to a real Git server sends a signed webhook (in each provider's own
// format) over loopback to the handler, whose target is a real Git source
// polling only once an hour. The pushed commit must arrive as a revision.
func TestPushToRealGitServerTriggersFetch(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		need.Missing(t, "git is not installed")
	}
	for _, endpoint := range []string{"github", "gitea", "gitlab", "bitbucket", "generic"} {
		t.Run(endpoint, func(t *testing.T) {
			srv := gitserver.New(t)
			url := srv.CreateRepo("app")
			work := srv.Clone(t, "app")
			first := work.Commit(t, map[string]string{"f": "a\n"}, "a")
			work.Push(t)

			g, err := sources.NewGit(sources.GitOptions{
				Name:       "app",
				Config:     config.GitSource{URL: url, Interval: config.Duration(time.Hour)},
				Dir:        filepath.Join(t.TempDir(), "state"),
				Logger:     zerolog.Nop(),
				Registerer: prometheus.NewRegistry(),
			})
			if err != nil {
				t.Fatalf("NewGit: %v", err)
			}
			r := newRig(t, func(o *Options) { o.Targets = []Target{g} })
			hooks := httptest.NewServer(r.mux)
			defer hooks.Close()
			client := hooks.Client()
			client.Timeout = 10 * time.Second
			defer client.CloseIdleConnections()

			statuses := make(chan int, 10)
			srv.OnPush(func(ev gitserver.PushEvent) {
				line, body := nativePush(endpoint, url, ev)
				req, err := http.NewRequest(http.MethodPost, hooks.URL+"/hooks/"+endpoint, bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header = signed(endpoint, line, body)
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("send webhook: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				statuses <- resp.StatusCode
			})

			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan sources.Revision, 1)
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx, out) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			if rev := waitRevision(t, out); rev.Commit != first {
				t.Fatalf("first revision %s, want %s", rev.Commit, first)
			}
			second := work.Commit(t, map[string]string{"f": "b\n"}, "b")
			work.Push(t)
			if st := <-statuses; st != http.StatusAccepted {
				t.Fatalf("webhook answered %d; log: %s", st, r.log.String())
			}
			if got := r.count(endpoint, "push", ResultAccepted); got != 1 {
				t.Errorf("accepted pushes counted %v, want 1; log: %s", got, r.log.String())
			}
			if rev := waitRevision(t, out); rev.Commit != second {
				t.Fatalf("revision after the webhook %s, want %s", rev.Commit, second)
			}
		})
	}
}

func waitRevision(t *testing.T, out <-chan sources.Revision) sources.Revision {
	t.Helper()
	select {
	case rev := <-out:
		return rev
	case <-time.After(20 * time.Second):
		t.Fatal("no revision within 20s")
		return sources.Revision{}
	}
}
