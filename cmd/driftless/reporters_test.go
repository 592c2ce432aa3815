package main

import (
	"context"
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

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/examples/quickstart"
	"github.com/driftless/driftless/reconciler/status"
)

// recorder is a local HTTP endpoint that keeps every request's method,
// path, Authorization header and JSON body, and answers 201.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, auth string
	body               map[string]any
}

func (rc *recorder) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		body := map[string]any{}
		_ = json.Unmarshal(data, &body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), body})
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id": 1}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// field returns one body field of every recorded request to path.
func (rc *recorder) field(path, key string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, r := range rc.reqs {
		if r.path == path {
			out = append(out, fmt.Sprint(r.body[key]))
		}
	}
	return out
}

// TestServeReportsToGitHostAndNotifies: the feedback and notify sections
// of driftless.yaml reach a running daemon. A GitHub Enterprise stand-in
// gets the pending and success commit statuses of the applied revision,
// and a JSON webhook the deploy and, after a hand edit, the drift.
func TestServeReportsToGitHostAndNotifies(t *testing.T) {
	gh, hook := &recorder{}, &recorder{}
	ghSrv, hookSrv := gh.start(t), hook.start(t)
	dir := t.TempDir()
	repo, root := filepath.Join(dir, "repo"), filepath.Join(dir, "root")
	if err := os.CopyFS(repo, quickstart.Files()); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "github.token")
	if err := os.WriteFile(token, []byte("gh-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
drift_interval: 1s
external_url: http://driftless.test
sources:
  - name: repo
    local: {path: %q, interval: 1s}
feedback:
  github:
    base_url: %s
    token: {file: %q}
    repository: ops/infra
notify:
  webhooks:
    - url: %s/notices
      events: [success, drift]
`, filepath.Join(dir, "state"), repo, ghSrv.URL, token, hookSrv.URL)
	cfg, err := config.ParseDaemon("driftless.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), serveHooks{localRoot: root})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	notices := func() []string { return hook.field("/notices", "status") }
	if err := waitFor(ctx, deadline, func() bool { return len(notices()) >= 1 }); err != nil {
		t.Fatalf("no deploy notice: %v", err)
	}
	if n := notices(); n[0] != status.StatusSuccess {
		t.Fatalf("first notice %q, want success (pending is not among the events)", n[0])
	}
	commit := hook.field("/notices", "commit")[0]
	statuses := "/api/v3/repos/ops/infra/statuses/" + commit
	if err := waitFor(ctx, deadline, func() bool { return len(gh.field(statuses, "state")) >= 2 }); err != nil {
		t.Fatalf("commit statuses: %v", gh.field(statuses, "state"))
	}
	if got := strings.Join(gh.field(statuses, "state"), ","); got != "pending,success" {
		t.Errorf("commit states %s, want pending,success", got)
	}
	if got := gh.field(statuses, "context")[1] + " " + gh.field(statuses, "target_url")[1]; got != "driftless/quickstart http://driftless.test/environments/quickstart" {
		t.Errorf("status context and link: %s", got)
	}
	gh.mu.Lock()
	auth := gh.reqs[0].auth
	gh.mu.Unlock()
	if auth != "Bearer gh-test-token" {
		t.Errorf("Authorization %q, want the token read from its file", auth)
	}

	if err := os.WriteFile(filepath.Join(root, "local", demoFile), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, deadline, func() bool { return strings.Contains(strings.Join(notices(), ","), status.StatusDrift) }); err != nil {
		t.Fatalf("no drift notice after a hand edit: %v (notices %v)", err, notices())
	}
}

// TestServeRefusesUnreadableReporterSecrets: a feedback token or webhook
// URL secret that cannot be read stops the daemon before it starts,
// naming what is missing, instead of running with its reports lost.
func TestServeRefusesUnreadableReporterSecrets(t *testing.T) {
	for _, tc := range []struct{ name, section, want string }{
		{"github token", "feedback:\n  github:\n    token: {file: %q}\n    repository: ops/infra\n", "feedback github: token:"},
		{"slack url", "notify:\n  slack:\n    - url_secret: {file: %q}\n", "notify slack[0]: url:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			missing := filepath.Join(dir, "missing.secret")
			yaml := fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: %q\n", filepath.Join(dir, "state")) + fmt.Sprintf(tc.section, missing)
			cfg, err := config.ParseDaemon("driftless.yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = serve(context.Background(), cfg, zerolog.Nop(), serveHooks{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), missing) {
				t.Fatalf("serve: %v, want an error with %q naming %s", err, tc.want, missing)
			}
		})
	}
}

// TestServeReadyAfterFirstRevision: /healthz answers as soon as the
// daemon listens, /readyz only once every source has produced a revision
// (here, once the watched folder appears).
func TestServeReadyAfterFirstRevision(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "later")
	yaml := fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: %q\nsources:\n  - name: repo\n    local: {path: %q, interval: 200ms}\n", filepath.Join(dir, "state"), repo)
	addr := serveInProcess(t, dir, yaml)
	status := func(path string) int {
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Fatalf("/healthz %d", got)
	}
	// The source retries the missing folder every 200ms; give it several.
	time.Sleep(time.Second)
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d before any revision, want 503", got)
	}
	if err := os.CopyFS(repo, quickstart.Files()); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(context.Background(), time.Now().Add(30*time.Second), func() bool { return status("/readyz") == http.StatusOK }); err != nil {
		t.Fatalf("/readyz never 200 after the folder appeared: %v", err)
	}
}

// serveInProcess runs serve with the daemon configuration yaml, local
// hosts under dir/root, until the test ends, and returns the address it
// listens on. A serve that fails or returns an error fails the test.
func serveInProcess(t *testing.T, dir, yaml string) string {
	t.Helper()
	cfg, err := config.ParseDaemon("driftless.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, zerolog.Nop(), serveHooks{localRoot: filepath.Join(dir, "root"), listening: func(a string) { addrc <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		done <- nil // serve has returned: the cleanup has nothing to wait for
		t.Fatalf("serve: %v", err)
		return ""
	}
}
