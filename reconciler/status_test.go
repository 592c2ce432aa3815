package reconciler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// page fetches a page and parses it as HTML, so that assertions are on
// what a browser would see (text and elements), not on raw bytes.
func page(t *testing.T, srv *httptest.Server, path string) (int, http.Header, *html.Node, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("%s is not HTML: %v", path, err)
	}
	return resp.StatusCode, resp.Header, doc, string(raw)
}

// visit calls fn on every node of the tree.
func visit(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		visit(c, fn)
	}
}

// text returns the visible text of a tree, whitespace collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	visit(n, func(n *html.Node) {
		if n.Type == html.TextNode && (n.Parent == nil || n.Parent.DataAtom != atom.Style) {
			b.WriteString(n.Data)
			b.WriteString(" ")
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestStatusPage(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	// A broken revision: its verification fails with markup in its
	// output, so the page must show that text without running it.
	bad := w.mk("broken")
	if _, err := w.f.r.ApplyRevision(context.Background(), bad); err == nil {
		t.Fatal("the broken revision applied")
	}
	// A second environment with a host nobody answers for.
	edge := "environment: edge\nhosts:\n  - name: far\n    address: 127.0.0.1\n    port: " + closedPort(t) +
		"\n    roles: [all]\n  - name: near\n    transport: local\n    roles: [all]\nroles:\n  all:\n" + fileRes("/etc/e.conf", "e\n")
	if _, err := w.f.r.ApplyRevision(context.Background(), w.f.revision(map[string]string{"environments/edge.yaml": edge})); err == nil {
		t.Fatal("edge applied with an unreachable host")
	}

	code, hdr, doc, raw := page(t, w.srv, "/")
	if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %s", code, hdr.Get("Content-Type"))
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("no script-blocking policy: %q", csp)
	}
	var refresh string
	visit(doc, func(n *html.Node) {
		switch n.DataAtom {
		case atom.Script:
			t.Errorf("the page has a script element: %s", raw)
		case atom.Meta:
			if attr(n, "http-equiv") == "refresh" {
				refresh = attr(n, "content")
			}
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("event handler attribute %s=%q", a.Key, a.Val)
			}
		}
	})
	if refresh != "10" {
		t.Errorf("auto-refresh is %q, want 10", refresh)
	}
	body := text(doc)
	for _, want := range []string{
		"2 environment(s)",
		// prod: back on rev2 after the broken revision, which is quarantined.
		"prod revision " + w.rev2.Commit[:12],
		"state rolled_back",
		"quarantined " + bad.Commit[:12],
		"hosts 2/2 up",
		"host reachable drift h1 up none h2 up none",
		"verification error 1 host(s) failed",
		"update file:/etc/app.conf on h1",
		"<script>alert(1)</script>", // as text, not as an element
		"drift none",
		// edge: never applied, its far host down.
		"edge revision none",
		"hosts 1/2 up",
		"far down none near up none",
		"plan error 1 host(s) could not be planned",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page text lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(raw, "<script>") {
		t.Errorf("raw markup from a run's error reached the page unescaped")
	}
	// The overview shows prod's last runs, newest first: the rolled back
	// revision, then rev2 and rev1.
	if i, j, k := strings.Index(body, bad.Commit[:12]+" revision rolled_back"), strings.Index(body, w.rev2.Commit[:12]+" revision success"), strings.Index(body, w.rev1.Commit[:12]+" revision success"); i < 0 || j < i || k < j {
		t.Errorf("runs missing or out of order (%d %d %d):\n%s", i, j, k, body)
	}
	// Each environment links to its own page, which reports link to.
	var links []string
	visit(doc, func(n *html.Node) {
		if n.DataAtom == atom.A {
			links = append(links, attr(n, "href"))
		}
	})
	if strings.Join(links, " ") != "environments/edge environments/prod" {
		t.Errorf("links %q", links)
	}
}

func TestStatusEnvironmentPage(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	code, _, doc, _ := page(t, w.srv, "/environments/prod")
	body := text(doc)
	if code != 200 || !strings.Contains(body, "prod revision "+w.rev2.Commit[:12]) || !strings.Contains(body, "state synced") || !strings.Contains(body, "quarantined none") {
		t.Fatalf("GET /environments/prod: %d\n%s", code, body)
	}
	if !strings.Contains(body, w.rev1.Commit[:12]+" revision success") {
		t.Errorf("history missing:\n%s", body)
	}
	if code, _, _, raw := page(t, w.srv, "/environments/nope"); code != 404 || !strings.Contains(raw, "unknown environment nope") {
		t.Errorf("unknown environment page: %d %q", code, raw)
	}
	// Only / itself is the overview; other paths are not found.
	if code, _, _, _ := page(t, w.srv, "/nothing-here"); code != 404 {
		t.Errorf("GET /nothing-here: %d", code)
	}
}

func TestStatusEmpty(t *testing.T) {
	f := newFixture(t)
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Refresh: 3 * time.Second}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, _, doc, _ := page(t, srv, "/")
	if body := text(doc); code != 200 || !strings.Contains(body, "No environment has been seen in a revision yet.") || !strings.Contains(body, "reloads every 3 s") {
		t.Fatalf("%d\n%s", code, body)
	}
}

// benchWorld builds a real reconciler holding n environments of two local
// hosts each, every one applied at two revisions, and returns its API mux.
func benchWorld(b *testing.B, n int) *http.ServeMux {
	b.Helper()
	dir := b.TempDir()
	store, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	sandbox := filepath.Join(dir, "hosts")
	r, err := New(Options{Store: store, Dialer: testDialer{}, Drivers: testDrivers(), Logger: zerolog.Nop(),
		Load: func(d string) (*config.Revision, error) {
			return config.LoadRevision(d, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: sandbox})
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	for v := range 2 {
		checkout := filepath.Join(dir, "repos", strconv.Itoa(v))
		if err := os.MkdirAll(filepath.Join(checkout, "environments"), 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			name := fmt.Sprintf("env-%03d", i)
			y := envYAML(name, []string{name + "-a", name + "-b"}, nil, etc+fileRes("/etc/app.conf", fmt.Sprint("v", v)), "")
			if err := os.WriteFile(filepath.Join(checkout, "environments", name+".yaml"), []byte(y), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		rev := sources.Revision{Source: "bench", Commit: strings.Repeat(strconv.Itoa(v+1), 40), Dir: checkout, Time: time.Now()}
		if _, err := r.ApplyRevision(context.Background(), rev); err != nil {
			b.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: r, Logger: zerolog.Nop()}).Register(mux)
	return mux
}

// BenchmarkStatusPage renders the overview and the environment list of 50
// environments in process (the HTTP transport is left out: it is not ours).
func BenchmarkStatusPage(b *testing.B) {
	mux := benchWorld(b, 50)
	for _, bc := range []struct{ name, path string }{
		{"overview", "/"}, {"environment-page", "/environments/env-007"},
		{"api-list", "/api/v1/environments"}, {"api-history", "/api/v1/environments/env-007/history"},
	} {
		path := bc.path
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatalf("GET %s: %d", path, rec.Code)
				}
				b.SetBytes(int64(rec.Body.Len()))
			}
		})
	}
}
