package webhook

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// benchDeliveries is how many distinct signed pushes a benchmark cycles
// through: a body seen before is a replay, so each request needs its own.
const benchDeliveries = 1024

// delivery is one signed request of a benchmark.
type delivery struct {
	body   []byte
	header http.Header
}

// benchPushes returns benchDeliveries copies of a real GitHub push, each
// with another "after" commit, signed, with its own delivery id.
func benchPushes(b *testing.B) []delivery {
	b.Helper()
	orig := readCorpus(b, "github/push-9.json")
	const after = "199eddf46df50de8d02e99bf1c5fdb4101338224"
	if !bytes.Contains(orig, []byte(after)) {
		b.Fatal("push-9.json changed")
	}
	out := make([]delivery, benchDeliveries)
	for i := range out {
		body := bytes.Replace(orig, []byte(after), fmt.Appendf(nil, "%040x", i+1), 1)
		out[i] = delivery{body: body, header: signed("github", "X-GitHub-Event: push", body)}
	}
	return out
}

// benchHandler is a handler as the daemon builds it, with a JSON logger
// writing to io.Discard (logging is part of the cost measured). Its clock
// advances a millisecond per request and the replay window is half a
// second, so a delivery is forgotten well before the benchmark cycles back
// to it (even with parallel clients reordering requests), and
// the in-memory delivery store stays small over millions of requests.
func benchHandler(b *testing.B, target Target) *http.ServeMux {
	b.Helper()
	var ticks atomic.Int64
	h := NewHandler(Options{
		Secrets:      testSecrets(),
		ReplayWindow: 500 * time.Millisecond,
		Now:          func() time.Time { return time.Unix(0, ticks.Add(int64(time.Millisecond))) },
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
	pushes := benchPushes(b)
	target := &takeAll{}
	mux := benchHandler(b, target)
	b.ReportAllocs()
	b.SetBytes(int64(len(pushes[0].body)))
	for i := 0; b.Loop(); i++ {
		d := pushes[i%len(pushes)]
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(d.body))
		req.Header = d.header
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
	pushes := benchPushes(b)
	target := &takeAll{}
	srv := httptest.NewServer(benchHandler(b, target))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 10 * time.Second
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(pushes[0].body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := pushes[seq.Add(1)%int64(len(pushes))]
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", bytes.NewReader(d.body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header = d.header.Clone()
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
