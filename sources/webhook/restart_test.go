package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources/webhook"
)

// TestReplayRefusedAfterRestart checks replay protection across a restart
// with the daemon's real state store: a delivery accepted by one handler is
// refused as a replay by a new handler on the reopened store, as after a
// daemon restart. This external test package opens the real store
// (its own package, no part of the reconciler); the package itself knows
// it only as a DeliveryStore.
func TestReplayRefusedAfterRestart(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "github", "push-9.json"))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("restart-secret")
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set("X-GitHub-Event", "push")
	header.Set("X-GitHub-Delivery", "7f1c0e5a-restart-test")
	header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHex(secret, body))
	path := filepath.Join(t.TempDir(), "state.db")
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	// deliver sends the delivery to a fresh handler on a freshly opened
	// store, then closes the store, as a daemon's life does.
	deliver := func(at time.Time) int {
		t.Helper()
		store, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := store.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		}()
		h := webhook.NewHandler(webhook.Options{
			Secrets:      webhook.Secrets{GitHub: secret},
			Deliveries:   store,
			ReplayWindow: time.Hour,
			Logger:       zerolog.Nop(),
			Now:          func() time.Time { return at },
		})
		mux := http.NewServeMux()
		h.Register(mux)
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header = header.Clone()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		return w.Code
	}
	steps := []struct {
		name string
		at   time.Time
		want int
	}{
		{"first delivery", now, http.StatusAccepted},
		{"replayed after a restart", now.Add(time.Minute), http.StatusConflict},
		{"after the window", now.Add(2 * time.Hour), http.StatusAccepted},
	}
	for _, s := range steps {
		if got := deliver(s.at); got != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, got, s.want)
		}
	}
}
