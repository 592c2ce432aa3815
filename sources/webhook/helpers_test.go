package webhook

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/syncbuf"
)

// testSecrets gives every provider its own secret, so that a request signed
// for one provider cannot pass another's check by accident.
func testSecrets() Secrets {
	return Secrets{
		GitHub:    []byte("github-secret"),
		GitLab:    []byte("gitlab-token"),
		Gitea:     []byte("gitea-secret"),
		Bitbucket: []byte("bitbucket-secret"),
		Generic:   []byte("generic-secret"),
	}
}

// recorder is a Target that takes the events its match function accepts
// and remembers every event it was offered.
type recorder struct {
	match func(sources.Event) bool
	mu    sync.Mutex
	got   []sources.Event
}

var _ Target = (*recorder)(nil)

func (r *recorder) Notify(ev sources.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ev)
	return r.match != nil && r.match(ev)
}

func (r *recorder) events() []sources.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sources.Event(nil), r.got...)
}

// fakeClock is a settable clock for replay windows.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// rig is a handler with its registry, captured log, target and clock.
type rig struct {
	h      *Handler
	mux    *http.ServeMux
	reg    *prometheus.Registry
	log    *syncbuf.Buffer
	target *recorder
	clock  *fakeClock
	// answers collects the bodies of every answer do received.
	answers strings.Builder
}

func newRig(t testing.TB, edit func(*Options)) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), log: &syncbuf.Buffer{}, clock: &fakeClock{}, mux: http.NewServeMux()}
	r.clock.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	r.target = &recorder{match: func(ev sources.Event) bool { return ev.Repository != "nobody/follows-this" }}
	opts := Options{
		Secrets:      testSecrets(),
		Deliveries:   &MemoryDeliveries{},
		ReplayWindow: time.Hour,
		Targets:      []Target{r.target},
		Logger:       zerolog.New(r.log),
		Registerer:   r.reg,
		Now:          r.clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	r.h = NewHandler(opts)
	r.h.Register(r.mux)
	return r
}

// count returns driftless_webhook_requests_total for one label set.
func (r *rig) count(provider, event, result string) float64 {
	return testutil.ToFloat64(r.h.requests.WithLabelValues(provider, event, result))
}

// do sends one request through the mux and returns the status.
func (r *rig) do(t testing.TB, endpoint string, h http.Header, body []byte) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/hooks/"+endpoint, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	r.mux.ServeHTTP(w, req)
	r.answers.Write(w.Body.Bytes())
	return w.Code
}

// signed returns the headers a sender would send for body on endpoint:
// the event header line, a fresh delivery id and a valid signature.
func signed(endpoint, eventLine string, body []byte) http.Header {
	h := eventHeader(eventLine)
	s := testSecrets()
	// A random id makes every signed request a new delivery.
	id := "delivery-" + rand.Text()
	switch endpoint {
	case "github":
		h.Set("X-GitHub-Delivery", id)
		h.Set("X-Hub-Signature-256", "sha256="+SignHex(s.GitHub, body))
	case "gitea":
		h.Set("X-Gitea-Delivery", id)
		h.Set("X-Gitea-Signature", SignHex(s.Gitea, body))
	case "forgejo":
		h.Set("X-Forgejo-Delivery", id)
		h.Set("X-Forgejo-Signature", SignHex(s.Gitea, body))
	case "gogs":
		h.Set("X-Gogs-Delivery", id)
		h.Set("X-Gogs-Signature", SignHex(s.Gitea, body))
	case "gitlab":
		h.Set("X-Gitlab-Event-UUID", id)
		h.Set("X-Gitlab-Token", string(s.GitLab))
	case "bitbucket":
		h.Set("X-Request-UUID", id)
		h.Set("X-Hub-Signature", "sha256="+SignHex(s.Bitbucket, body))
	case "generic":
		h.Set("X-Driftless-Delivery", id)
		h.Set(DefaultGenericHeader, SignHex(s.Generic, body))
	}
	return h
}
