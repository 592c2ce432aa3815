package httpserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRouteLimits: a handler that takes longer than its route's write
// limit loses its connection, while the same slow handler on a route with
// a longer limit (a slow /metrics) still answers.
func TestRouteLimits(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	s, err := New(slow, Options{
		ReadHeaderTimeout: time.Second,
		IdleTimeout:       time.Second,
		Routes:            []Route{{Prefix: "/api/", Limits: Limits{Read: time.Second, Write: 100 * time.Millisecond}}},
		Default:           Limits{Read: time.Second, Write: 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-done
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (string, error) {
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get("/metrics"); err != nil || body != "done" {
		t.Errorf("/metrics with a 3s write limit: %q, %v; want the answer", body, err)
	}
	if body, err := get("/api/v1/environments"); err == nil {
		t.Errorf("/api/ with a 100ms write limit answered %q after 400ms; want the connection cut", body)
	}
}
