package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
)

// testToken is the bearer token of the API tests.
const testToken = "s3cret-token-for-tests"

// apiWorld is a real reconciler with an applied environment "prod" (two
// local hosts, two revisions applied one after the other) served by a real
// HTTP server.
type apiWorld struct {
	f          *fixture
	srv        *httptest.Server
	rev1, rev2 sources.Revision
	mk         func(content string) sources.Revision
}

// appConf is the declared file the API tests watch on the hosts.
const appConf = "/etc/app.conf"

func newAPIWorld(t *testing.T, token config.Secret) *apiWorld {
	t.Helper()
	f := newFixture(t)
	w := &apiWorld{f: f}
	check := "verify:\n  - name: marker\n    command: \"if grep -q broken $DRIFTLESS_ROOT/etc/app.conf; then echo '<script>alert(1)</script>' >&2; exit 1; fi\"\n"
	w.mk = func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil,
			etc+fileRes(appConf, content), check)})
	}
	w.rev1, w.rev2 = w.mk("one"), w.mk("two")
	for _, rev := range []sources.Revision{w.rev1, w.rev2} {
		if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
			t.Fatalf("apply %s: %v", rev.Short(), err)
		}
	}
	mux := http.NewServeMux()
	NewAPI(APIOptions{Reconciler: f.r, Token: token, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}).Register(mux)
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	return w
}

// tokenFile writes the test token to a file, as an operator would.
func tokenFile(t *testing.T) config.Secret {
	t.Helper()
	p := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Secret{File: p}
}

// call sends a request and returns the status, headers and body.
func (w *apiWorld) call(t *testing.T, method, path, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

// decode unmarshals a JSON answer strictly: an unknown field fails.
func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, data, err)
	}
	return v
}

func TestAPIReads(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))

	code, hdr, body := w.call(t, "GET", "/api/v1/environments", "", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("list: %d %s: %s", code, hdr.Get("Content-Type"), body)
	}
	list := decode[[]EnvStatus](t, body)
	if len(list) != 1 {
		t.Fatalf("list has %d environments: %s", len(list), body)
	}
	prod := list[0]
	if prod.Name != "prod" || prod.Applied != w.rev2.Commit || prod.LastGood != w.rev2.Commit || prod.State != StateSynced || prod.LastResult != ResultSuccess {
		t.Fatalf("list entry: %+v", prod)
	}
	if len(prod.Hosts) != 2 || prod.Hosts[0] != (HostStatus{Name: "h1", Up: true}) || prod.Hosts[1] != (HostStatus{Name: "h2", Up: true}) {
		t.Fatalf("hosts: %+v", prod.Hosts)
	}

	code, _, body = w.call(t, "GET", "/api/v1/environments/prod", "", "")
	if one := decode[EnvStatus](t, body); code != 200 || one.Name != "prod" || one.Applied != w.rev2.Commit {
		t.Fatalf("get: %d %s", code, body)
	}

	t.Run("history", func(t *testing.T) {
		for _, tc := range []struct {
			query   string
			commits []string
		}{
			{"", []string{w.rev2.Commit, w.rev1.Commit}},
			{"?limit=1", []string{w.rev2.Commit}},
			{"?limit=50", []string{w.rev2.Commit, w.rev1.Commit}},
		} {
			code, _, body := w.call(t, "GET", "/api/v1/environments/prod/history"+tc.query, "", "")
			runs := decode[[]Run](t, body)
			if code != 200 || len(runs) != len(tc.commits) {
				t.Fatalf("history%s: %d %s", tc.query, code, body)
			}
			for i, c := range tc.commits {
				if runs[i].Revision.Commit != c || runs[i].Result != ResultSuccess || runs[i].Environment != "prod" || runs[i].ID == 0 {
					t.Fatalf("history%s run %d: %+v, want commit %s", tc.query, i, runs[i], c)
				}
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			path, want string
			code       int
		}{
			{"/api/v1/environments/nope", `unknown environment "nope"`, 404},
			{"/api/v1/environments/nope/history", `unknown environment "nope"`, 404},
			{"/api/v1/environments/prod/history?limit=abc", `limit must be a positive integer, got "abc"`, 400},
			{"/api/v1/environments/prod/history?limit=-3", `limit must be a positive integer, got "-3"`, 400},
		} {
			code, _, body := w.call(t, "GET", tc.path, "", "")
			if e := decode[apiError](t, body); code != tc.code || e.Error != tc.want {
				t.Errorf("%s: %d %q, want %d %q", tc.path, code, e.Error, tc.code, tc.want)
			}
		}
		// A GET on a mutating endpoint is not allowed, and says so.
		if code, hdr, _ := w.call(t, "GET", "/api/v1/environments/prod/sync", "", ""); code != 405 || hdr.Get("Allow") != "POST" {
			t.Errorf("GET sync: %d, Allow %q", code, hdr.Get("Allow"))
		}
	})
}

func TestAPIListEmpty(t *testing.T) {
	f := newFixture(t)
	mux := http.NewServeMux()
	NewAPI(APIOptions{Reconciler: f.r}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/v1/environments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// An empty list is [], never null: clients iterate over it.
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("empty list: %d %q", resp.StatusCode, body)
	}
}

func TestAPIAuth(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	for _, tc := range []struct {
		name, auth string
		code       int
		challenge  string
	}{
		{"no header", "", 401, `Bearer realm="driftless"`},
		{"basic scheme", "Basic " + testToken, 401, `Bearer realm="driftless"`},
		{"empty bearer", "Bearer ", 401, `Bearer realm="driftless"`},
		{"wrong token", "Bearer not-the-token", 401, `Bearer realm="driftless", error="invalid_token"`},
		{"token prefix", "Bearer " + testToken[:5], 401, `Bearer realm="driftless", error="invalid_token"`},
		{"token with suffix", "Bearer " + testToken + "x", 401, `Bearer realm="driftless", error="invalid_token"`},
		{"right token", "Bearer " + testToken, 200, ""},
		{"scheme is case-insensitive", "bearer " + testToken, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runsBefore, _ := w.f.r.History("prod", 0)
			code, hdr, body := w.call(t, "POST", "/api/v1/environments/prod/sync", tc.auth, "")
			if code != tc.code || hdr.Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("%d (WWW-Authenticate %q): %s", code, hdr.Get("WWW-Authenticate"), body)
			}
			runsAfter, _ := w.f.r.History("prod", 0)
			if code != 200 {
				if e := decode[apiError](t, body); e.Error == "" {
					t.Fatalf("no error message: %s", body)
				}
				// A refused request ran nothing.
				if len(runsAfter) != len(runsBefore) {
					t.Fatalf("refused sync still ran: %d runs before, %d after", len(runsBefore), len(runsAfter))
				}
				return
			}
			if st := decode[EnvStatus](t, body); st.Name != "prod" || st.Applied != w.rev2.Commit {
				t.Fatalf("sync answer: %s", body)
			}
			// A manual sync is recorded even when it changed nothing.
			if len(runsAfter) != len(runsBefore)+1 || runsAfter[0].Trigger != TriggerSync {
				t.Fatalf("sync not in history: %+v", runsAfter)
			}
		})
	}
	// An unknown environment is a 404, but only once authorised: the
	// token is checked first.
	if code, _, _ := w.call(t, "POST", "/api/v1/environments/nope/sync", "", ""); code != 401 {
		t.Fatalf("unknown environment without token: %d", code)
	}
	code, _, body := w.call(t, "POST", "/api/v1/environments/nope/sync", "Bearer "+testToken, "")
	if e := decode[apiError](t, body); code != 404 || e.Error != `unknown environment "nope"` {
		t.Fatalf("unknown environment: %d %s", code, body)
	}
}

func TestAPITokenMissingOrUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token config.Secret
		code  int
		want  string
	}{
		{"not configured", config.Secret{}, 403, "no API token is configured (api.token in driftless.yaml): sync and rollback are disabled"},
		{"file gone", config.Secret{File: filepath.Join(t.TempDir(), "missing")}, 500, "the daemon cannot read its API token; see its log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newAPIWorld(t, tc.token)
			for _, path := range []string{"/api/v1/environments/prod/sync", "/api/v1/environments/prod/rollback"} {
				// Even a request carrying a token is refused: there is
				// nothing to compare it with.
				code, _, body := w.call(t, "POST", path, "Bearer anything", "")
				if e := decode[apiError](t, body); code != tc.code || e.Error != tc.want {
					t.Fatalf("%s: %d %s", path, code, body)
				}
			}
			if got := w.f.hostFile("h1", appConf); got != "two" {
				t.Fatalf("refused operations changed the host: %q", got)
			}
		})
	}
}

// TestAPITokenRotation: the token file is read at each request, so a new
// token works at once and the old one stops working.
func TestAPITokenRotation(t *testing.T) {
	tok := tokenFile(t)
	w := newAPIWorld(t, tok)
	if code, _, body := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer "+testToken, ""); code != 200 {
		t.Fatalf("first token: %d %s", code, body)
	}
	if err := os.WriteFile(tok.File, []byte("rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer "+testToken, ""); code != 401 {
		t.Fatalf("old token after rotation: %d", code)
	}
	if code, _, body := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer rotated", ""); code != 200 {
		t.Fatalf("rotated token: %d %s", code, body)
	}
}

// TestAPISyncHealsDrift: a file changed behind driftless's back is put
// back by POST sync, and the answer says the environment is synced.
func TestAPISyncHealsDrift(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	w.f.writeHostFile("h2", appConf, "edited by hand")
	code, _, body := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer "+testToken, "")
	st := decode[EnvStatus](t, body)
	if code != 200 || st.State != StateSynced || st.DriftResources != 0 {
		t.Fatalf("sync: %d %s", code, body)
	}
	if got := w.f.hostFile("h2", appConf); got != "two" {
		t.Fatalf("h2 after sync: %q", got)
	}
	runs, _ := w.f.r.History("prod", 1)
	if len(runs) != 1 || runs[0].Trigger != TriggerSync || runs[0].Result != ResultSuccess || runs[0].Changes != 1 {
		t.Fatalf("sync run: %+v", runs)
	}
}

// TestAPISyncFailure: a sync whose correction cannot be applied answers
// 500 with the reason and the environment's state.
func TestAPISyncFailure(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	// A directory where the file should be: the file driver refuses to
	// replace it, so the drift correction fails.
	p := filepath.Join(w.f.sandbox, "h1", appConf)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, body := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer "+testToken, "")
	e := decode[apiError](t, body)
	if code != 500 || !strings.Contains(e.Error, "drift pass of prod") || !strings.Contains(e.Error, appConf) {
		t.Fatalf("failed sync: %d %s", code, body)
	}
	if e.Status == nil || e.Status.Name != "prod" || e.Status.State != StateDrifted || e.Status.DriftResources != 1 {
		t.Fatalf("failed sync carries no state: %s", body)
	}
}

func TestAPIRollback(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	auth := "Bearer " + testToken
	rollback := func(t *testing.T, body string) (int, []byte) {
		t.Helper()
		code, _, data := w.call(t, "POST", "/api/v1/environments/prod/rollback", auth, body)
		return code, data
	}
	// A broken revision is rolled back by the reconciler and quarantined:
	// it never succeeded, so nobody can roll back to it.
	bad := w.mk("broken")
	if _, err := w.f.r.ApplyRevision(context.Background(), bad); err == nil {
		t.Fatal("the broken revision applied")
	}

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			body, want string
			code       int
		}{
			{"not json", `body must be {"to": "<commit>"}`, 400},
			{`{"to": 5}`, `body must be {"to": "<commit>"}`, 400},
			{`{"commit": "abcdef0"}`, `unknown field "commit"`, 400},
			{`{"to": "abc"}`, `to must be a commit id of 7 hex characters at least, got "abc"`, 400},
			{`{"to": "zzzzzzzz"}`, `to must be a commit id of 7 hex characters at least, got "zzzzzzzz"`, 400},
			{`{"to": "` + strings.Repeat("f", 40) + `"}`, "has no successful run of commit ffffffff", 409},
			{`{"to": "` + bad.Commit + `"}`, "has no successful run of commit " + bad.Commit, 409},
		} {
			code, data := rollback(t, tc.body)
			if e := decode[apiError](t, data); code != tc.code || !strings.Contains(e.Error, tc.want) {
				t.Errorf("body %s: %d %q, want %d %q", tc.body, code, e.Error, tc.code, tc.want)
			}
		}
		if got := w.f.hostFile("h1", appConf); got != "two" {
			t.Fatalf("refused rollbacks changed the host: %q", got)
		}
		code, _, data := w.call(t, "POST", "/api/v1/environments/nope/rollback", auth, "")
		if code != 404 {
			t.Fatalf("unknown environment: %d %s", code, data)
		}
	})

	steps := []struct {
		name, body string
		want       sources.Revision
		content    string
	}{
		{"to a commit prefix", `{"to": "` + strings.ToUpper(w.rev1.Commit[:12]) + `"}`, w.rev1, "one"},
		// No commit: the newest successful revision other than the
		// applied one, which undoes the previous rollback.
		{"default target", "", w.rev2, "two"},
		{"empty to", `{"to": ""}`, w.rev1, "one"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, data := rollback(t, s.body)
			st := decode[EnvStatus](t, data)
			if code != 200 || st.Applied != s.want.Commit || st.State != StateSynced {
				t.Fatalf("%d %s, want applied %s", code, data, s.want.Commit)
			}
			for _, h := range []string{"h1", "h2"} {
				if got := w.f.hostFile(h, appConf); got != s.content {
					t.Fatalf("%s after rollback: %q, want %q", h, got, s.content)
				}
			}
			runs, _ := w.f.r.History("prod", 1)
			if runs[0].Trigger != TriggerRollback || runs[0].Revision.Commit != s.want.Commit {
				t.Fatalf("newest run: %+v", runs[0])
			}
		})
	}
}

// TestAPIRollbackNothingEarlier: an environment with a single successful
// revision has nothing to go back to.
func TestAPIRollbackNothingEarlier(t *testing.T) {
	f := newFixture(t)
	rev := f.revision(map[string]string{"environments/solo.yaml": envYAML("solo", []string{"s1"}, nil, etc+fileRes("/etc/s.conf", "s"), "")})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	NewAPI(APIOptions{Reconciler: f.r, Token: tokenFile(t)}).Register(mux)
	w := &apiWorld{f: f, srv: httptest.NewServer(mux)}
	defer w.srv.Close()
	code, _, body := w.call(t, "POST", "/api/v1/environments/solo/rollback", "Bearer "+testToken, "")
	want := "environment solo has no successful revision other than the applied one " + rev.Commit[:12] + " to roll back to"
	if e := decode[apiError](t, body); code != 409 || e.Error != want {
		t.Fatalf("%d %s", code, body)
	}
}

// FuzzParseRollback: any body either is refused with an error or names
// no commit or a lower-case hex commit of 7 characters at least.
func FuzzParseRollback(f *testing.F) {
	for _, s := range []string{"", " \n", `{"to": "ABCDEF0"}`, `{"to": ""}`, `{"to": "abc"}`, `{"to": 5}`, `{"x": 1}`, `{"to": "abcdef0"} {}`, "null", "[]", `{"to": "  abcdef01  "}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		to, err := parseRollback(body)
		if err != nil {
			if to != "" || err.Error() == "" {
				t.Fatalf("error %v with commit %q", err, to)
			}
			return
		}
		if to != "" && (len(to) < 7 || strings.Trim(to, "0123456789abcdef") != "") {
			t.Fatalf("accepted commit %q from %q", to, body)
		}
	})
}

// FuzzBearer: a token is returned only from a Bearer header, never empty
// or padded, and it round-trips.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer x", "bearer  x ", "Basic x", "Bearer", "Bearer ", "BEARER a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearer(h)
		if !ok {
			if tok != "" {
				t.Fatalf("refused %q but returned %q", h, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) || !strings.HasPrefix(strings.ToLower(h), "bearer ") {
			t.Fatalf("%q gave token %q", h, tok)
		}
		if again, ok := bearer("Bearer " + tok); !ok || again != tok {
			t.Fatalf("token %q does not round-trip: %q %v", tok, again, ok)
		}
	})
}

// TestAPIOperationOutlivesClient: a client that goes away in the middle
// of a rollback does not cut the rollout short; it completes on every host.
func TestAPIOperationOutlivesClient(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.f.ver.gate = func(string, string) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", w.srv.URL+"/api/v1/environments/prod/rollback", strings.NewReader(`{"to": "`+w.rev1.Commit+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	errc := make(chan error, 1)
	go func() {
		resp, err := w.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered // the rollout is verifying its first host
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	close(release)
	eventually(t, "the rollback completes", func() bool {
		st, _ := w.f.r.Environment("prod")
		return st.Applied == w.rev1.Commit && st.State == StateSynced
	})
	for _, h := range []string{"h1", "h2"} {
		if got := w.f.hostFile(h, appConf); got != "one" {
			t.Fatalf("%s: %q", h, got)
		}
	}
}

// TestAPIConcurrentSyncs: syncs sent at once all run, one after the
// other, and each answers the synced state.
func TestAPIConcurrentSyncs(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	before, _ := w.f.r.History("prod", 0)
	const n = 4
	codes := make(chan int, n)
	for range n {
		// Not w.call: a helper goroutine must not call t.Fatal.
		go func() {
			req, _ := http.NewRequest("POST", w.srv.URL+"/api/v1/environments/prod/sync", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := w.srv.Client().Do(req)
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range n {
		if code := <-codes; code != 200 {
			t.Errorf("concurrent sync: %d", code)
		}
	}
	after, _ := w.f.r.History("prod", 0)
	if len(after) != len(before)+n {
		t.Fatalf("%d runs recorded for %d syncs", len(after)-len(before), n)
	}
	for _, r := range after[:n] {
		if r.Trigger != TriggerSync || r.End.IsZero() {
			t.Fatalf("run %+v", r)
		}
	}
	// Runs were serialised: none started before the previous one ended.
	for i := 0; i+1 < n; i++ {
		if after[i].Start.Before(after[i+1].End) {
			t.Fatalf("runs %d and %d overlap", after[i+1].ID, after[i].ID)
		}
	}
}

// TestAPIOperationStopsWithDaemon: the daemon's context ending interrupts
// a manual rollback; the API answers why, and the next pass puts the
// hosts back on one whole revision.
func TestAPIOperationStopsWithDaemon(t *testing.T) {
	f := newFixture(t)
	w := &apiWorld{f: f}
	w.mk = func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil,
			etc+fileRes(appConf, content), "rollout: {batch: 1}\nverify:\n  - command: \"true\"\n")})
	}
	w.rev1, w.rev2 = w.mk("one"), w.mk("two")
	for _, rev := range []sources.Revision{w.rev1, w.rev2} {
		if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
			t.Fatal(err)
		}
	}
	daemon, stop := context.WithCancel(context.Background())
	defer stop()
	mux := http.NewServeMux()
	NewAPI(APIOptions{Reconciler: f.r, Token: tokenFile(t), Context: daemon}).Register(mux)
	w.srv = httptest.NewServer(mux)
	defer w.srv.Close()

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.ver.gate = func(string, string) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	type answer struct {
		code int
		body []byte
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", w.srv.URL+"/api/v1/environments/prod/rollback", strings.NewReader(`{"to": "`+w.rev1.Commit+`"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			done <- answer{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, b}
	}()
	<-entered // h1 is on rev1 and verifying; h2 still on rev2
	stop()
	close(release)
	a := <-done
	if e := decode[apiError](t, a.body); a.code != 500 || !strings.Contains(e.Error, "interrupted") {
		t.Fatalf("%d %s", a.code, a.body)
	}
	// The next pass first finishes the interrupted rollout's rollback.
	f.ver.gate = nil
	if err := f.r.Sync(context.Background(), "prod"); err != nil {
		t.Fatalf("sync after the interruption: %v", err)
	}
	h1, h2 := f.hostFile("h1", appConf), f.hostFile("h2", appConf)
	if h1 != h2 {
		t.Fatalf("hosts left on different revisions: h1 %q, h2 %q", h1, h2)
	}
}
