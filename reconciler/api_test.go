package reconciler

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
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
	api.New(api.Options{Reconciler: f.r, Token: token, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}).Register(mux)
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
	list := decode[[]status.EnvStatus](t, body)
	if len(list) != 1 {
		t.Fatalf("list has %d environments: %s", len(list), body)
	}
	prod := list[0]
	if prod.Name != "prod" || prod.Applied != w.rev2.Commit || prod.LastGood != w.rev2.Commit || prod.State != status.StateSynced || prod.LastResult != status.ResultSuccess {
		t.Fatalf("list entry: %+v", prod)
	}
	if len(prod.Hosts) != 2 || prod.Hosts[0] != (status.HostStatus{Name: "h1", Up: true}) || prod.Hosts[1] != (status.HostStatus{Name: "h2", Up: true}) {
		t.Fatalf("hosts: %+v", prod.Hosts)
	}

	code, _, body = w.call(t, "GET", "/api/v1/environments/prod", "", "")
	if one := decode[status.EnvStatus](t, body); code != 200 || one.Name != "prod" || one.Applied != w.rev2.Commit {
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
			runs := decode[[]store.Run](t, body)
			if code != 200 || len(runs) != len(tc.commits) {
				t.Fatalf("history%s: %d %s", tc.query, code, body)
			}
			// The daemon's checkout folders are not shown to API readers.
			if w.rev1.Dir == "" || strings.Contains(string(body), w.rev1.Dir) || strings.Contains(string(body), `"dir"`) {
				t.Fatalf("history%s shows the checkout folder %q: %s", tc.query, w.rev1.Dir, body)
			}
			for i, c := range tc.commits {
				if runs[i].Revision.Commit != c || runs[i].Result != status.ResultSuccess || runs[i].Environment != "prod" || runs[i].ID == 0 {
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
			if e := decode[api.ErrorAnswer](t, body); code != tc.code || e.Error != tc.want {
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
	api.New(api.Options{Reconciler: f.r}).Register(mux)
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
				if e := decode[api.ErrorAnswer](t, body); e.Error == "" {
					t.Fatalf("no error message: %s", body)
				}
				// A refused request ran nothing.
				if len(runsAfter) != len(runsBefore) {
					t.Fatalf("refused sync still ran: %d runs before, %d after", len(runsBefore), len(runsAfter))
				}
				return
			}
			if st := decode[status.EnvStatus](t, body); st.Name != "prod" || st.Applied != w.rev2.Commit {
				t.Fatalf("sync answer: %s", body)
			}
			// A manual sync is recorded even when it changed nothing.
			if len(runsAfter) != len(runsBefore)+1 || runsAfter[0].Trigger != status.TriggerSync {
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
	if e := decode[api.ErrorAnswer](t, body); code != 404 || e.Error != `unknown environment "nope"` {
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
		{"not configured", config.Secret{}, 403, "no API token is configured (api.token or api.tokens in driftless.yaml): the mutating API is disabled"},
		{"file gone", config.Secret{File: filepath.Join(t.TempDir(), "missing")}, 500, "the daemon cannot read its API token; see its log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newAPIWorld(t, tc.token)
			for _, path := range []string{"/api/v1/environments/prod/sync", "/api/v1/environments/prod/rollback"} {
				// Even a request carrying a token is refused: there is
				// nothing to compare it with.
				code, _, body := w.call(t, "POST", path, "Bearer anything", "")
				if e := decode[api.ErrorAnswer](t, body); code != tc.code || e.Error != tc.want {
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
