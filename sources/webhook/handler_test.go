package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandlerResults(t *testing.T) {
	push := readCorpus(t, "github/push-9.json")
	const pushLine = "X-GitHub-Event: push"
	tests := []struct {
		name     string
		edit     func(*Options)
		endpoint string
		header   func() http.Header
		body     []byte
		status   int
		provider string
		event    string
		result   string
		offered  int    // events the target was offered
		reason   string // expected in the answer's body
	}{
		{name: "signed push accepted", endpoint: "github", header: func() http.Header { return signed("github", pushLine, push) },
			body: push, status: 202, provider: "github", event: "push", result: ResultAccepted, offered: 1},
		{name: "bad signature", endpoint: "github", body: push, status: 401, provider: "github", event: "unknown", result: ResultUnauthorized, reason: "signature does not match",
			header: func() http.Header {
				h := signed("github", pushLine, push)
				h.Set("X-Hub-Signature-256", "sha256="+SignHex([]byte("wrong"), push))
				return h
			}},
		{name: "missing signature", endpoint: "github", body: push, status: 401, provider: "github", event: "unknown", result: ResultUnauthorized,
			header: func() http.Header {
				h := signed("github", pushLine, push)
				h.Del("X-Hub-Signature-256")
				return h
			}},
		{name: "sha1 only", endpoint: "github", body: push, status: 401, provider: "github", event: "unknown", result: ResultUnauthorized, reason: "X-Hub-Signature-256",
			header: func() http.Header {
				h := signed("github", pushLine, push)
				h.Del("X-Hub-Signature-256")
				h.Set("X-Hub-Signature", "sha1=cf93f9ba3c8d3a789e61f91e1e5c6a360d036e98")
				return h
			}},
		{name: "garbage legacy signature", endpoint: "github", body: push, status: 401, provider: "github", event: "unknown", result: ResultUnauthorized,
			reason: "missing signature: no X-Hub-Signature-256, and X-Hub-Signature is not a signature",
			header: func() http.Header {
				h := signed("github", pushLine, push)
				h.Del("X-Hub-Signature-256")
				h.Set("X-Hub-Signature", "garbage")
				return h
			}},
		{name: "no secret configured", edit: func(o *Options) { o.Secrets.GitHub = nil }, endpoint: "github",
			header: func() http.Header { return signed("github", pushLine, push) }, body: push, status: 403,
			provider: "github", event: "unknown", result: ResultUnauthorized, reason: "no secret is configured"},
		{name: "signed with another provider's secret", endpoint: "gitlab", body: push, status: 401, provider: "gitlab", event: "unknown", result: ResultUnauthorized,
			header: func() http.Header {
				h := signed("gitlab", "X-Gitlab-Event: Push Hook", push)
				h.Set("X-Gitlab-Token", string(testSecrets().GitHub))
				return h
			}},
		{name: "unknown provider", endpoint: "svn", header: func() http.Header { return signed("github", pushLine, push) },
			body: push, status: 404, provider: "unknown", event: "unknown", result: ResultBadRequest},
		{name: "bad JSON with a good signature", endpoint: "github", body: []byte(`{"ref":`), status: 400, provider: "github", event: "push", result: ResultBadRequest,
			header: func() http.Header { return signed("github", pushLine, []byte(`{"ref":`)) }},
		{name: "ping", endpoint: "github", body: readCorpus(t, "github/ping-5.json"), status: 200, provider: "github", event: "ping", result: ResultAccepted,
			header: func() http.Header {
				return signed("github", "X-GitHub-Event: ping", readCorpus(t, "github/ping-5.json"))
			}},
		{name: "create acknowledged and ignored", endpoint: "github", body: readCorpus(t, "github/create-7.json"), status: 202, provider: "github", event: "other", result: ResultIgnored,
			header: func() http.Header {
				return signed("github", "X-GitHub-Event: create", readCorpus(t, "github/create-7.json"))
			}},
		{name: "edited pull request not offered", endpoint: "gitea", body: readCorpus(t, "gitea/pull_request_edited-1.json"), status: 202, provider: "gitea", event: "pull_request", result: ResultIgnored,
			header: func() http.Header {
				return signed("gitea", "X-Gitea-Event: pull_request", readCorpus(t, "gitea/pull_request_edited-1.json"))
			}},
		{name: "unmatched push ignored", endpoint: "generic", status: 202, provider: "generic", event: "push", result: ResultIgnored, offered: 1,
			body: []byte(`{"repository":"nobody/follows-this","ref":"main","commit":"0123456789abcdef0123456789abcdef01234567"}`),
			header: func() http.Header {
				return signed("generic", "Content-Type: application/json",
					[]byte(`{"repository":"nobody/follows-this","ref":"main","commit":"0123456789abcdef0123456789abcdef01234567"}`))
			}},
		{name: "no target at all", edit: func(o *Options) { o.Targets = nil }, endpoint: "github", status: 202, provider: "github", event: "push", result: ResultIgnored,
			header: func() http.Header { return signed("github", pushLine, push) }, body: push},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.edit)
			req := httptest.NewRequest(http.MethodPost, "/hooks/"+tt.endpoint, bytes.NewReader(tt.body))
			for k, v := range tt.header() {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			r.mux.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; log: %s", w.Code, tt.status, r.log.String())
			}
			if tt.reason != "" && !strings.Contains(w.Body.String(), tt.reason) {
				t.Errorf("answer %q does not give the reason %q", w.Body.String(), tt.reason)
			}
			if got := r.count(tt.provider, tt.event, tt.result); got != 1 {
				t.Errorf("driftless_webhook_requests_total{%s,%s,%s} = %v, want 1", tt.provider, tt.event, tt.result, got)
			}
			if got := len(r.target.events()); got != tt.offered {
				t.Errorf("target offered %d events, want %d", got, tt.offered)
			}
			if !strings.Contains(r.log.String(), `"result":"`+tt.result+`"`) {
				t.Errorf("log has no result %q: %s", tt.result, r.log.String())
			}
		})
	}
}

// TestMatchedEventReachesTarget checks the event the target sees, not only
// that it was called.
func TestMatchedEventReachesTarget(t *testing.T) {
	r := newRig(t, nil)
	body := readCorpus(t, "gitlab/push-2.json")
	h := signed("gitlab", "X-Gitlab-Event: Push Hook", body)
	if got := r.do(t, "gitlab", h, body); got != http.StatusAccepted {
		t.Fatalf("status = %d", got)
	}
	evs := r.target.events()
	if len(evs) != 1 {
		t.Fatalf("target got %d events", len(evs))
	}
	ev := evs[0]
	if ev.Provider != "gitlab" || ev.Kind != "push" || ev.Repository != "gitlab-org/hello-world" ||
		ev.Ref != "refs/heads/master" || !strings.HasPrefix(ev.Commit, "2adc946") || ev.DeliveryID != h.Get("X-Gitlab-Event-Uuid") {
		t.Fatalf("target got %+v", ev)
	}
	if !strings.Contains(r.log.String(), `"message":"webhook accepted"`) {
		t.Errorf("no accepted log line: %s", r.log.String())
	}
}

func TestReplayRefused(t *testing.T) {
	r := newRig(t, nil)
	body := readCorpus(t, "bitbucket-cloud/repo_push-2.json")
	h := signed("bitbucket", "X-Event-Key: repo:push", body)
	steps := []struct {
		advance time.Duration
		status  int
	}{
		{0, 202},
		{time.Minute, 409},               // the same delivery again: a replay
		{time.Hour - 2*time.Minute, 409}, // still inside the one-hour window
		{2 * time.Minute, 202},           // the window has passed
	}
	for i, s := range steps {
		r.clock.Advance(s.advance)
		if got := r.do(t, "bitbucket", h, body); got != s.status {
			t.Fatalf("step %d: status = %d, want %d", i, got, s.status)
		}
	}
	if got := r.count("bitbucket", "push", ResultReplay); got != 2 {
		t.Errorf("replays counted = %v, want 2", got)
	}
	if got := len(r.target.events()); got != 2 {
		t.Errorf("target offered %d events, want 2 (replays must not reach it)", got)
	}
	// The signature does not cover the delivery id: the same signed body
	// under a fresh id is still a replay.
	r.clock.Advance(time.Minute)
	fresh := signed("bitbucket", "X-Event-Key: repo:push", body)
	if got := r.do(t, "bitbucket", fresh, body); got != http.StatusConflict {
		t.Errorf("same body with a new delivery id: status %d, want 409", got)
	}
	// A known delivery id is a replay whatever the body.
	other := readCorpus(t, "bitbucket-cloud/repo_push-3.json")
	sameID := signed("bitbucket", "X-Event-Key: repo:push", other)
	sameID.Set("X-Request-UUID", fresh.Get("X-Request-UUID"))
	if got := r.do(t, "bitbucket", sameID, other); got != http.StatusConflict {
		t.Errorf("known delivery id with another body: status %d, want 409", got)
	}
	// A sender without delivery ids is protected by the body's hash.
	gen := []byte(`{"repository":"o/r","ref":"main","commit":"0123456789abcdef0123456789abcdef01234567"}`)
	gh := signed("generic", "Content-Type: application/json", gen)
	gh.Del("X-Driftless-Delivery")
	if a, b := r.do(t, "generic", gh, gen), r.do(t, "generic", gh, gen); a != 202 || b != 409 {
		t.Errorf("generic without id: statuses %d, %d, want 202, 409", a, b)
	}
}

func TestOversizedBodyRefused(t *testing.T) {
	const limit = DefaultMaxBodyBytes
	tests := []struct {
		name          string
		contentLength int64
	}{
		{"declared length", limit + 1},
		{"chunked", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			// The body is produced on the fly and counted, to show the handler
			// stops reading soon after the limit instead of reading it all.
			src := &countingReader{r: io.LimitReader(zeros{}, 4*limit)}
			req := httptest.NewRequest(http.MethodPost, "/hooks/github", src)
			req.ContentLength = tt.contentLength
			for k, v := range signed("github", "X-GitHub-Event: push", []byte("x")) {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			r.mux.ServeHTTP(w, req)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413", w.Code)
			}
			if src.n > limit+64<<10 {
				t.Errorf("read %d bytes of an oversized body; the limit is %d", src.n, limit)
			}
			if got := r.count("github", "unknown", ResultTooLarge); got != 1 {
				t.Errorf("too_large counted %v times", got)
			}
		})
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestHeadersCaseInsensitive sends header names in lower and upper case over
// a real connection; the server must match them whatever their case.
func TestHeadersCaseInsensitive(t *testing.T) {
	r := newRig(t, nil)
	srv := httptest.NewServer(r.mux)
	defer srv.Close()
	for i, mangle := range []func(string) string{strings.ToLower, strings.ToUpper} {
		// Two different pushes, since a body seen before is a replay.
		body := readCorpus(t, []string{"gitea/push-1.json", "gitea/push-2.json"}[i])
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/gitea", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range signed("gitea", "X-Gitea-Event: push", body) {
			// Assigning the map directly keeps the name as written on the wire.
			req.Header[mangle(k)] = v
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d with %s header names", resp.StatusCode, mangle("Name"))
		}
	}
	if got := r.count("gitea", "push", ResultAccepted); got != 2 {
		t.Errorf("accepted %v, want 2", got)
	}
}
