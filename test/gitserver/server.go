// Package gitserver is a real Git server for tests: `git http-backend` run
// through net/http/cgi on a loopback httptest server. Clients (go-git, the
// git command line) clone, fetch and push over real smart HTTP.
//
// Every receive-pack (push) is observed: the server compares the
// repository's refs before and after it and calls the OnPush callback once
// per changed ref, before the push's response is sent. So when a test's
// `git push` returns, the callback has already run, which lets a test send
// a GitHub-shaped push webhook deterministically.
//
// Typical use:
//
//	srv := gitserver.New(t)
//	url := srv.CreateRepo("app")
//	work := srv.Clone(t, "app")
//	sha := work.Commit(t, map[string]string{"environments/prod.yaml": "..."}, "first")
//	work.Push(t)
package gitserver

import (
	"context"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

// ZeroSHA is the commit id Git uses for "no commit": Before of a created
// ref, After of a deleted one.
const ZeroSHA = "0000000000000000000000000000000000000000"

// commandTimeout bounds every git command the server or its helpers run, so a
// stuck git never hangs a test run.
const commandTimeout = 2 * time.Minute

// PushEvent is one ref changed by a push.
type PushEvent struct {
	// Repo is the repository's name as given to CreateRepo.
	Repo string
	// Ref is the full ref name ("refs/heads/main", "refs/tags/v1").
	Ref string
	// Before is the ref's commit before the push, ZeroSHA when it was created.
	Before string
	// After is the ref's commit after the push, ZeroSHA when it was deleted.
	After string
}

// Created reports whether the push created the ref.
func (e PushEvent) Created() bool { return e.Before == ZeroSHA }

// Deleted reports whether the push deleted the ref.
func (e PushEvent) Deleted() bool { return e.After == ZeroSHA }

// Server is a Git smart-HTTP server (on loopback unless NewAt says where),
// stopped when the test ends.
type Server struct {
	t    testing.TB
	root string
	srv  *httptest.Server
	cgi  *cgi.Handler
	// tls is the HTTPS twin of srv, started by StartTLS.
	tls *httptest.Server

	// pushMu serialises receive-packs so that the refs compared before and
	// after one push are not changed by another.
	pushMu sync.Mutex

	mu       sync.Mutex
	fetches  map[string]int
	onPush   func(PushEvent)
	user     string
	password string
}

// New starts a server on loopback whose repositories live in a temporary
// folder of t.
func New(t testing.TB) *Server {
	t.Helper()
	return NewAt(t, "127.0.0.1")
}

// NewAt is New listening on ip (a port of its own) instead of loopback:
// for example a test lab's bridge address, which the lab's hosts reach
// from their own network namespaces.
func NewAt(t testing.TB, ip string) *Server {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		need.Missing(t, "gitserver: git is not installed; it is needed for a real Git server")
	}
	s := &Server{t: t, root: t.TempDir()}
	s.cgi = &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Root: "/",
		Env: append(gitEnv(t.TempDir()),
			"GIT_PROJECT_ROOT="+s.root,
			"GIT_HTTP_EXPORT_ALL=1",
		),
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("gitserver: listen on %s: %v", ip, err)
	}
	s.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serveHTTP)}}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// StartTLS serves the same repositories over HTTPS as well, on a second
// loopback port with a certificate of its own, and returns that
// certificate in PEM form for the client under test to trust. The plain
// HTTP server stays up: the test's own git command line (Clone, Push) keeps
// using it, while the client under test reaches TLSRepoURL.
func (s *Server) StartTLS() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tls == nil {
		s.tls = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
		// A client that refuses the certificate is what some tests check;
		// the server's own complaint about it would only be noise.
		s.tls.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.tls.StartTLS()
		s.t.Cleanup(s.tls.Close)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.tls.Certificate().Raw})
}

// TLSRepoURL is the https:// clone URL of the repository name; StartTLS
// must have been called.
func (s *Server) TLSRepoURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tls == nil {
		s.t.Fatalf("gitserver: TLSRepoURL(%q) before StartTLS", name)
	}
	return s.tls.URL + "/" + name + ".git"
}

// URL is the server's base URL ("http://127.0.0.1:PORT" from New).
func (s *Server) URL() string { return s.srv.URL }

// RepoURL is the clone URL of the repository name (without credentials).
func (s *Server) RepoURL(name string) string { return s.srv.URL + "/" + name + ".git" }

// Dir is the folder of the bare repository name on the server.
func (s *Server) Dir(name string) string { return filepath.Join(s.root, name+".git") }

// Fetches returns how many fetches (and clones) of repository name the
// server has answered: each starts with one upload-pack ref advertisement.
func (s *Server) Fetches(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[name]
}

// OnPush sets the function called for every ref a push changes. It runs
// before the push's response is sent; it must not push to this server.
func (s *Server) OnPush(fn func(PushEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPush = fn
}

// RequireAuth makes every request need HTTP basic auth with this user and
// password (a token is a password). Clients without it get 401.
func (s *Server) RequireAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.password = user, password
}

// AuthURL is the clone URL of name with the configured credentials in it,
// for the git command line.
func (s *Server) AuthURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.user == "" && s.password == "" {
		return s.RepoURL(name)
	}
	return strings.Replace(s.RepoURL(name), "http://", "http://"+s.user+":"+s.password+"@", 1)
}

// CreateRepo creates an empty bare repository (default branch main) that
// accepts pushes, and returns its clone URL. A failure fails the test given
// to New.
func (s *Server) CreateRepo(name string) string {
	t := s.t
	t.Helper()
	dir := s.Dir(name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatalf("gitserver: create repo %s: %v", name, err)
	}
	run(t, "", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	run(t, dir, "config", "http.receivepack", "true")
	// Tests rewrite history (force-push) and delete the default branch, as
	// real Git hosts allow; fetching a commit by id must work as on GitHub.
	run(t, dir, "config", "receive.denyNonFastForwards", "false")
	run(t, dir, "config", "receive.denyDeleteCurrent", "ignore")
	run(t, dir, "config", "uploadpack.allowReachableSHA1InWant", "true")
	return s.RepoURL(name)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	user, password, fn := s.user, s.password, s.onPush
	s.mu.Unlock()
	if user != "" || password != "" {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	if repo, ok := strings.CutSuffix(r.URL.Path, "/info/refs"); ok && r.URL.Query().Get("service") == "git-upload-pack" {
		s.mu.Lock()
		if s.fetches == nil {
			s.fetches = map[string]int{}
		}
		s.fetches[strings.TrimSuffix(strings.TrimPrefix(repo, "/"), ".git")]++
		s.mu.Unlock()
	}
	repo, ok := strings.CutSuffix(r.URL.Path, "/git-receive-pack")
	if !ok || r.Method != http.MethodPost {
		s.cgi.ServeHTTP(w, r)
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(repo, "/"), ".git")
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	before, err := s.refs(r.Context(), name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	// The response is held back until the callback has run, so that a
	// client's push returns only after the "webhook" was delivered.
	rec := httptest.NewRecorder()
	s.cgi.ServeHTTP(rec, r)
	after, err := s.refs(r.Context(), name)
	if err == nil && fn != nil {
		for _, ev := range diffRefs(name, before, after) {
			fn(ev)
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// refs lists the refs of repository name: full ref name to commit id.
func (s *Server) refs(ctx context.Context, name string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "for-each-ref", "--format=%(objectname) %(refname)")
	cmd.Dir = s.Dir(name)
	cmd.Env = gitEnv(os.TempDir())
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list refs of %s: %w", name, err)
	}
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if sha, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = sha
		}
	}
	return refs, nil
}

// diffRefs returns one event per ref that differs, sorted by ref name for
// a stable order.
func diffRefs(repo string, before, after map[string]string) []PushEvent {
	var evs []PushEvent
	for ref, a := range after {
		if b, ok := before[ref]; !ok {
			evs = append(evs, PushEvent{Repo: repo, Ref: ref, Before: ZeroSHA, After: a})
		} else if b != a {
			evs = append(evs, PushEvent{Repo: repo, Ref: ref, Before: b, After: a})
		}
	}
	for ref, b := range before {
		if _, ok := after[ref]; !ok {
			evs = append(evs, PushEvent{Repo: repo, Ref: ref, Before: b, After: ZeroSHA})
		}
	}
	sortEvents(evs)
	return evs
}

func sortEvents(evs []PushEvent) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].Ref < evs[j-1].Ref; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}
