package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// TestPulledReports: a pull-mode host's report needs a token with the
// report scope and its own host in the body; a kept report is listed,
// with the time it was received.
func TestPulledReports(t *testing.T) {
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	a := New(Options{Logger: zerolog.Nop(), Now: func() time.Time { return now }, Pulled: status.NewPulledHosts(0),
		Tokens: []config.APIToken{{Name: "edge", SHA256: hash("report-token"), Scopes: []string{config.ScopeReport}},
			{Name: "ci", SHA256: hash("sync-token"), Scopes: []string{config.ScopeSync}}}})
	mux := http.NewServeMux()
	a.Register(mux)
	post := func(host, token, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/pulled/"+host, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		return w.Code
	}
	good := `{"host": "edge-1", "version": "v9", "environments": [{"name": "edge", "applied": "abc", "last_good": "abc", "state": "idle", "drift_resources": 0}]}`
	for _, c := range []struct {
		name, host, token, body string
		want                    int
	}{
		{"no token", "edge-1", "", good, http.StatusUnauthorized},
		{"wrong token", "edge-1", "nope", good, http.StatusUnauthorized},
		{"token without the report scope", "edge-1", "sync-token", good, http.StatusForbidden},
		{"another host's report", "edge-2", "report-token", good, http.StatusBadRequest},
		{"empty body", "edge-1", "report-token", "", http.StatusBadRequest},
		{"unknown field", "edge-1", "report-token", `{"host": "edge-1", "environments": [], "run": "rm -rf /"}`, http.StatusBadRequest},
		{"bad host name", "edge%201", "report-token", `{"host": "edge 1", "environments": []}`, http.StatusBadRequest},
		{"kept", "edge-1", "report-token", good, http.StatusNoContent},
	} {
		if got := post(c.host, c.token, c.body); got != c.want {
			t.Errorf("%s: answered %d, want %d", c.name, got, c.want)
		}
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pulled", nil))
	var got []status.PulledHost
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Host != "edge-1" || got[0].Version != "v9" || !got[0].Received.Equal(now) ||
		len(got[0].Environments) != 1 || got[0].Environments[0].Applied != "abc" {
		t.Errorf("listed %+v", got)
	}
}
