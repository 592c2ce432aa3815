package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMethodNotAllowed(t *testing.T) {
	r := newRig(t, nil)
	req := httptest.NewRequest(http.MethodGet, "/hooks/github", nil)
	w := httptest.NewRecorder()
	r.mux.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status = %d, want 405", w.Code)
	}
}

// TestSecondHandlerSharesCounter builds two handlers on one registry, as a
// config reload does: the second must count into the same series.
func TestSecondHandlerSharesCounter(t *testing.T) {
	r := newRig(t, nil)
	second := NewHandler(Options{Secrets: testSecrets(), Registerer: r.reg})
	mux := http.NewServeMux()
	second.Register(mux)
	body := readCorpus(t, "github/ping-5.json")
	req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	for k, v := range signed("github", "X-GitHub-Event: ping", body) {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d", w.Code)
	}
	if got := r.count("github", "ping", ResultAccepted); got != 1 {
		t.Fatalf("first handler's counter = %v, want 1", got)
	}
	n, err := testutil.GatherAndCount(r.reg, "driftless_webhook_requests_total")
	if err != nil || n != 1 {
		t.Fatalf("registry has %d series (%v), want 1", n, err)
	}
}
