package feedback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// newFakeREST records every request and answers 201, after failing the
// first `failures` ones with 500.
func newFakeREST(t *testing.T, failures int) (*fakeHost, *httptest.Server) {
	f := &fakeHost{t: t, failures: map[string]int{}, failCode: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		f.mu.Lock()
		fail := failures > 0
		failures--
		f.mu.Unlock()
		if fail {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "boom"})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": 1})
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// newServer starts a test server whose handler runs one request at a time,
// so handlers can count without locks.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGiteaCommitStatus(t *testing.T) {
	tests := []struct {
		status, want string
	}{
		{status.StatusPending, "pending"},
		{status.StatusSuccess, "success"},
		{status.StatusFailure, "failure"},
		{status.StatusRolledBack, "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			f, srv := newFakeREST(t, 1)
			g, err := NewGitea(HostAPIConfig{BaseURL: srv.URL + "/", Token: "tok", Repository: "ops/infra"},
				Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))})
			if err != nil {
				t.Fatal(err)
			}
			g.Report(context.Background(), report(tt.status, "did it"))
			got := f.got("")
			if len(got) != 2 {
				t.Fatalf("requests: %d, want 2 (a 500 is retried)", len(got))
			}
			r := got[1]
			if r.Method != http.MethodPost || r.Path != "/api/v1/repos/ops/infra/statuses/"+sha {
				t.Errorf("request %s %s", r.Method, r.Path)
			}
			if h := r.Header.Get("Authorization"); h != "token tok" {
				t.Errorf("Authorization %q", h)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			b := r.Body
			if b["state"] != tt.want || b["context"] != "driftless/staging" || b["target_url"] != "http://driftless.test/environments/staging" {
				t.Errorf("body %v", b)
			}
			if d, _ := b["description"].(string); tt.status == status.StatusRolledBack && !strings.HasPrefix(d, "rolled back") {
				t.Errorf("description %q", d)
			}
		})
	}
}

func TestGitLabCommitStatus(t *testing.T) {
	tests := []struct {
		project, wantURI string
	}{
		{"42", "/api/v4/projects/42/statuses/" + sha},
		{"group/sub/infra", "/api/v4/projects/group%2Fsub%2Finfra/statuses/" + sha},
	}
	for _, tt := range tests {
		t.Run(tt.project, func(t *testing.T) {
			f, srv := newFakeREST(t, 0)
			g, err := NewGitLab(HostAPIConfig{BaseURL: srv.URL, Token: "glpat", Repository: tt.project},
				Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))})
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []string{status.StatusPending, status.StatusSuccess, status.StatusRolledBack, status.StatusDrift} {
				g.Report(context.Background(), report(st, "x"))
			}
			got := f.got("")
			if len(got) != 3 {
				t.Fatalf("requests: %d, want 3 (drift sets no status)", len(got))
			}
			for i, want := range []string{"running", "success", "failed"} {
				r := got[i]
				if r.RawURI != tt.wantURI {
					t.Errorf("request URI %s, want %s", r.RawURI, tt.wantURI)
				}
				if h := r.Header.Get("Private-Token"); h != "glpat" {
					t.Errorf("PRIVATE-TOKEN %q", h)
				}
				if r.Body["state"] != want || r.Body["name"] != "driftless/staging" {
					t.Errorf("body %d: %v", i, r.Body)
				}
			}
		})
	}
}

func TestNewFromConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := config.Secret{File: tokenFile}
	good := config.Feedback{
		GitHub: &config.HostAPI{Token: tok, Repository: "ops/infra", Deployments: true},
		Gitea:  &config.HostAPI{BaseURL: "https://git.test", Token: tok, Repository: "ops/infra"},
		GitLab: &config.HostAPI{Token: tok, Repository: "ops/infra"},
	}
	rps, err := New(good, Options{})
	if err != nil || len(rps) != 3 {
		t.Fatalf("New: %d reporters, %v", len(rps), err)
	}
	if gh := rps[0].(*GitHub); gh.client.BaseURL.String() != "https://api.github.com/" || !gh.deployments {
		t.Errorf("github: base %s", gh.client.BaseURL)
	}
	if rps, err := New(config.Feedback{}, Options{}); err != nil || len(rps) != 0 {
		t.Errorf("empty config: %v %v", rps, err)
	}
	bad := []struct {
		name string
		cfg  config.Feedback
		want string
	}{
		{"missing token file", config.Feedback{GitHub: &config.HostAPI{Token: config.Secret{File: filepath.Join(dir, "none")}, Repository: "a/b"}}, "feedback github: token"},
		{"bad repository", config.Feedback{GitHub: &config.HostAPI{Token: tok, Repository: "infra"}}, "want owner/name"},
		{"gitea without base url", config.Feedback{Gitea: &config.HostAPI{Token: tok, Repository: "a/b"}}, "needs base_url"},
		{"gitlab with credentials in url", config.Feedback{GitLab: &config.HostAPI{BaseURL: "https://u:p@gl.test", Token: tok, Repository: "1"}}, "must not carry credentials"},
		{"gitlab ftp", config.Feedback{GitLab: &config.HostAPI{BaseURL: "ftp://gl.test", Token: tok, Repository: "1"}}, "want http(s)"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), ":p@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}
