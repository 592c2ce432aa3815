package reconciler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestAPISyncHealsDrift: a file changed behind driftless's back is put
// back by POST sync, and the answer says the environment is synced.
func TestAPISyncHealsDrift(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	w.f.writeHostFile("h2", appConf, "edited by hand")
	code, _, body := w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer "+testToken, "")
	st := decode[status.EnvStatus](t, body)
	if code != 200 || st.State != status.StateSynced || st.DriftResources != 0 {
		t.Fatalf("sync: %d %s", code, body)
	}
	if got := w.f.hostFile("h2", appConf); got != "two" {
		t.Fatalf("h2 after sync: %q", got)
	}
	runs, _ := w.f.r.History("prod", 1)
	if len(runs) != 1 || runs[0].Trigger != status.TriggerSync || runs[0].Result != status.ResultSuccess || runs[0].Changes != 1 {
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
	e := decode[api.ErrorAnswer](t, body)
	if code != 500 || !strings.Contains(e.Error, "drift pass of prod") || !strings.Contains(e.Error, appConf) {
		t.Fatalf("failed sync: %d %s", code, body)
	}
	if e.Status == nil || e.Status.Name != "prod" || e.Status.State != status.StateDrifted || e.Status.DriftResources != 1 {
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
			if e := decode[api.ErrorAnswer](t, data); code != tc.code || !strings.Contains(e.Error, tc.want) {
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
			st := decode[status.EnvStatus](t, data)
			if code != 200 || st.Applied != s.want.Commit || st.State != status.StateSynced {
				t.Fatalf("%d %s, want applied %s", code, data, s.want.Commit)
			}
			for _, h := range []string{"h1", "h2"} {
				if got := w.f.hostFile(h, appConf); got != s.content {
					t.Fatalf("%s after rollback: %q, want %q", h, got, s.content)
				}
			}
			runs, _ := w.f.r.History("prod", 1)
			if runs[0].Trigger != status.TriggerRollback || runs[0].Revision.Commit != s.want.Commit {
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
	api.New(api.Options{Reconciler: f.r, Token: tokenFile(t)}).Register(mux)
	w := &apiWorld{f: f, srv: httptest.NewServer(mux)}
	defer w.srv.Close()
	code, _, body := w.call(t, "POST", "/api/v1/environments/solo/rollback", "Bearer "+testToken, "")
	want := "environment solo has no successful revision other than the applied one " + rev.Commit[:12] + " to roll back to"
	if e := decode[api.ErrorAnswer](t, body); code != 409 || e.Error != want {
		t.Fatalf("%d %s", code, body)
	}
}

// TestAPIRemovedEnvironment: sync and rollback of an environment that its
// source no longer declares answer 409 with its state, and change nothing.
func TestAPIRemovedEnvironment(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	st, _ := w.f.r.Environment("prod")
	w.f.r.retireRemoved(sources.Revision{Source: st.AppliedSource, Commit: strings.Repeat("c", 40)}, &config.Revision{})
	w.f.writeHostFile("h2", appConf, "edited by hand")
	for _, op := range []string{"sync", "rollback"} {
		code, _, body := w.call(t, "POST", "/api/v1/environments/prod/"+op, "Bearer "+testToken, "")
		e := decode[api.ErrorAnswer](t, body)
		if code != http.StatusConflict || !strings.Contains(e.Error, "environment removed from its source") ||
			e.Status == nil || e.Status.State != status.StateRemoved {
			t.Fatalf("%s of a removed environment: %d %s", op, code, body)
		}
	}
	if got := w.f.hostFile("h2", appConf); got != "edited by hand" {
		t.Fatalf("a removed environment's host was changed: %q", got)
	}
}
