package feedback

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/status"
)

func TestGitLabHonoursRetryAfter(t *testing.T) {
	f := &fakeHost{t: t}
	calls := 0
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		if calls++; calls == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "slow down"})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": 1})
	})
	g, err := NewGitLab(HostAPIConfig{BaseURL: srv.URL, Token: "t", Repository: "1"},
		Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g.Report(context.Background(), report(status.StatusSuccess, "ok"))
	if n := len(f.got("")); n != 2 {
		t.Errorf("requests: %d, want 2", n)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", d)
	}
}
