package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
)

func tokenHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// TestAPIApprovalScopes: a token that may sync cannot approve, a token
// that may approve cannot sync, and approval through the API applies
// exactly the revision it names.
func TestAPIApprovalScopes(t *testing.T) {
	f := newFixture(t)
	revs := runDaemon(t, f)
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Tokens: []config.APIToken{
			{Name: "release-manager", SHA256: strings.ToUpper(tokenHash("approve-secret")), Scopes: []string{config.ScopeApprove}},
			{Name: "ci", SHA256: tokenHash("sync-secret"), Scopes: []string{config.ScopeSync, config.ScopeRollback}},
		}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	w := &apiWorld{f: f, srv: srv}

	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
		etc+fileRes(appConf, "one"), "approval: {required: true}\n")})
	revs <- rev
	eventually(t, "prod awaits approval", func() bool { return f.state("prod").State == status.StateAwaitingApproval })

	_, _, page := w.call(t, "GET", "/environments/prod", "", "")
	for _, want := range []string{"awaiting_approval", "awaiting approval of " + rev.Short(), "h1: create <code>file:/etc/app.conf</code>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	_, _, js := w.call(t, "GET", "/api/v1/environments/prod", "", "")
	if st := decode[status.EnvStatus](t, js); st.GatePlan == nil || st.Gate == nil || st.Gate.Revision.Commit != rev.Commit {
		t.Errorf("API does not show the held revision and its plan: %s", js)
	}
	body := `{"revision": "` + rev.Commit[:10] + `"}`
	for _, c := range []struct {
		name, path, auth, body string
		code                   int
		want                   string
	}{
		{"sync token approves", "approve", "Bearer sync-secret", body, 403, "token:ci does not have the approve scope"},
		{"sync token rejects", "reject", "Bearer sync-secret", body, 403, "token:ci does not have the approve scope"},
		{"approve token syncs", "sync", "Bearer approve-secret", "", 403, "token:release-manager does not have the sync scope"},
		{"approve token forces a sync", "sync", "Bearer approve-secret", `{"force": true}`, 403, "does not have the sync scope"},
		{"the hash is not a token", "approve", "Bearer " + tokenHash("approve-secret"), body, 401, "wrong API token"},
		{"another revision", "approve", "Bearer approve-secret", `{"revision": "0123456789abcdef"}`, 409, "is not the revision held at its gates"},
		{"bad body", "approve", "Bearer approve-secret", `{"rev": 1}`, 400, `body must be {\"revision\"`},
	} {
		code, _, got := w.call(t, "POST", "/api/v1/environments/prod/"+c.path, c.auth, c.body)
		if code != c.code || !strings.Contains(string(got), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, got, c.code, c.want)
		}
	}
	if f.hostFile("h1", appConf) != "<absent>" || f.state("prod").State != status.StateAwaitingApproval {
		t.Fatal("a refused request changed something")
	}
	code, _, got := w.call(t, "POST", "/api/v1/environments/prod/approve", "Bearer approve-secret", body)
	if code != 200 {
		t.Fatalf("approve: %d %s", code, got)
	}
	ans := decode[api.DecisionAnswer](t, got)
	if ans.Decision.Commit != rev.Commit || ans.Decision.By != "token:release-manager" || !ans.Decision.Approved {
		t.Fatalf("decision: %+v", ans.Decision)
	}
	eventually(t, "prod applies the approved revision", func() bool { return f.applied("prod") == rev.Commit })
	if f.hostFile("h1", appConf) != "one" {
		t.Fatal("host not changed")
	}
	st := f.state("prod")
	if len(st.Decisions) != 1 || st.Decisions[0].By != "token:release-manager" {
		t.Fatalf("status does not show the decision: %+v", st.Decisions)
	}
	_, _, page = w.call(t, "GET", "/environments/prod", "", "")
	if !strings.Contains(string(page), "approved by token:release-manager") {
		t.Errorf("status page does not say who approved")
	}
	code, _, got = w.call(t, "POST", "/api/v1/environments/prod/sync", "Bearer sync-secret", "")
	if code != 200 {
		t.Fatalf("sync with the sync token: %d %s", code, got)
	}
}
