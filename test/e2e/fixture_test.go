package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
)

// githubHook sends a GitHub-shaped push webhook, signed with
// X-Hub-Signature-256, to the daemon for every ref a push to the Git server
// changes, as GitHub does after a push.
type githubHook struct {
	secret   []byte
	cloneURL string

	mu     sync.Mutex
	target string
	sent   int
	errs   []error
}

// newGitHubHook registers the hook on srv for the repository at cloneURL
// and returns it; deliveries start once setTarget gave the daemon's URL.
func newGitHubHook(srv *gitserver.Server, cloneURL string, secret []byte) *githubHook {
	h := &githubHook{secret: secret, cloneURL: cloneURL}
	srv.OnPush(h.onPush)
	return h
}

// setTarget sets the daemon base URL the hooks are posted to.
func (h *githubHook) setTarget(url string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.target = url
}

func (h *githubHook) onPush(ev gitserver.PushEvent) {
	h.mu.Lock()
	target := h.target
	h.mu.Unlock()
	if target == "" {
		return
	}
	err := h.deliver(target, ev, h.secret)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.errs = append(h.errs, err)
		return
	}
	h.sent++
}

// deliver posts one push event signed with secret and expects a 2xx answer.
func (h *githubHook) deliver(target string, ev gitserver.PushEvent, secret []byte) error {
	body, err := json.Marshal(map[string]any{
		"ref": ev.Ref, "before": ev.Before, "after": ev.After, "deleted": ev.Deleted(),
		"repository": map[string]any{"full_name": "team/" + ev.Repo, "clone_url": h.cloneURL},
	})
	if err != nil {
		return fmt.Errorf("encode push payload: %w", err)
	}
	return postGitHub(target, "push", body, secret)
}

// postGitHub posts one GitHub-shaped delivery of event, signed with
// secret, and expects a 2xx answer.
func postGitHub(target, event string, body, secret []byte) error {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return postHook(target, "github", map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": deliveryID(),
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}, body)
}

// postHook posts one webhook delivery to the daemon's /hooks/provider
// with the headers given, and expects a 2xx answer.
func postHook(target, provider string, header map[string]string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/hooks/"+provider, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post %s webhook: %w", provider, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &hookStatusError{code: resp.StatusCode, msg: fmt.Sprintf("%s webhook answered %d: %s", provider, resp.StatusCode, b)}
	}
	return nil
}

// deliveryID is a random delivery id.
func deliveryID() string {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return hex.EncodeToString(id)
}

// check fails the test when a delivery failed, and returns how many were
// accepted.
func (h *githubHook) check(t testing.TB) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		t.Errorf("webhook delivery: %v", err)
	}
	return h.sent
}

// artifactServer serves release archives over loopback HTTP, as an
// artifact store would; the daemon downloads them and checks their sha256.
type artifactServer struct {
	dir string
	srv *httptest.Server
}

func newArtifactServer(t testing.TB) *artifactServer {
	t.Helper()
	a := &artifactServer{dir: t.TempDir()}
	a.srv = httptest.NewServer(http.FileServer(http.Dir(a.dir)))
	t.Cleanup(a.srv.Close)
	return a
}

// add writes a tar.gz holding files (name → content; names ending in the
// app binary are made executable) as name, and returns its URL and sha256.
func (a *artifactServer) add(t testing.TB, name string, files map[string][]byte) (url, sum string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range slices.Sorted(maps.Keys(files)) {
		mode := int64(0o644)
		if n == "app" {
			mode = 0o755
		}
		hdr := &tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %s: %v", n, err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatalf("tar %s: %v", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	if err := gz.Close(); err != nil {
		t.Fatalf("close gzip: %v", err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, name), buf.Bytes(), 0o644); err != nil {
		t.Fatalf("write artifact %s: %v", name, err)
	}
	s := sha256.Sum256(buf.Bytes())
	return a.srv.URL + "/" + name, hex.EncodeToString(s[:])
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return p
}

// hookStatusError is a webhook delivery the daemon answered with a non-2xx
// status.
type hookStatusError struct {
	code int
	msg  string
}

func (e *hookStatusError) Error() string { return e.msg }
