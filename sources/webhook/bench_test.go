package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/sources"
)

// takeAll is a Target that takes every event, as a Git source following the
// repository would, and only counts them.
type takeAll struct{ n atomic.Int64 }

func (t *takeAll) Notify(sources.Event) bool { t.n.Add(1); return true }

// benchHandler is a handler as the daemon builds it, with a short replay
// window so that the in-memory delivery store stays small over millions of
// requests, and a JSON logger writing to io.Discard (logging is part of
// the cost measured).
func benchHandler(b *testing.B, target Target) *http.ServeMux {
	b.Helper()
	h := NewHandler(Options{
		Secrets:      testSecrets(),
		ReplayWindow: time.Second,
		Targets:      []Target{target},
		Logger:       zerolog.New(io.Discard),
		Registerer:   prometheus.NewRegistry(),
	})
	mux := http.NewServeMux()
	h.Register(mux)
	return mux
}

// BenchmarkIntake measures a signed GitHub push (8.5 kB) through the whole
// handler: routing, body read, HMAC, go-github decode, replay check,
// target, metric and log line. Each request has a new delivery id.
func BenchmarkIntake(b *testing.B) {
	body := readCorpus(b, "github/push-9.json")
	base := signed("github", "X-GitHub-Event: push", body)
	target := &takeAll{}
	mux := benchHandler(b, target)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		for k, v := range base {
			req.Header[k] = v
		}
		req.Header.Set("X-GitHub-Delivery", "bench-"+strconv.Itoa(i))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(target.n.Load())/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkIntakeLoopback sends the same signed push over a real TCP
// listener on loopback with keep-alive connections, from parallel clients.
func BenchmarkIntakeLoopback(b *testing.B) {
	body := readCorpus(b, "github/push-9.json")
	base := signed("github", "X-GitHub-Event: push", body)
	target := &takeAll{}
	srv := httptest.NewServer(benchHandler(b, target))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 10 * time.Second
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			for k, v := range base {
				req.Header[k] = v
			}
			req.Header.Set("X-GitHub-Delivery", "loop-"+strconv.FormatInt(seq.Add(1), 10))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(target.n.Load())/b.Elapsed().Seconds(), "req/s")
}
