package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/test/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sha = "0123456789abcdef0123456789abcdef01234567"

var (
	fastBackoff = kit.Backoff{Attempts: 3, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	slowBackoff = kit.Backoff{Attempts: 3, Initial: 5 * time.Second}
)

func testReport(st, desc string) status.Report {
	return status.Report{Environment: "staging", Source: "infra", Commit: sha, Status: st, Description: desc,
		URL: "http://driftless.test/environments/staging", Time: time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)}
}

// receiver is a local webhook endpoint that records what it gets and
// answers `fail` 500s before succeeding (or hangs when hang is set).
type receiver struct {
	mu       sync.Mutex
	fail     int
	hang     bool
	requests []*http.Request
	bodies   [][]byte
}

func (rc *receiver) start(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, r)
		rc.bodies = append(rc.bodies, body)
		fail := rc.fail > 0
		rc.fail--
		rc.mu.Unlock()
		if rc.hang {
			<-r.Context().Done()
			return
		}
		if fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func build(t *testing.T, cfg config.Notify, srv *httptest.Server, opts Options, logs io.Writer) []status.Reporter {
	t.Helper()
	opts.HTTPClient = srv.Client()
	if opts.Backoff.Initial == 0 {
		opts.Backoff = fastBackoff
	}
	if logs == nil {
		logs = zerolog.NewTestWriter(t)
	}
	opts.Logger = zerolog.New(logs)
	rps, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rps
}

func TestJSONWebhook(t *testing.T) {
	rc := &receiver{}
	srv := rc.start(t)
	rps := build(t, config.Notify{Webhooks: []config.NotifyWebhook{{URL: srv.URL + "/hook"}}}, srv, Options{UserAgent: "driftless/1.2.3"}, nil)
	rps[0].Report(context.Background(), testReport(status.StatusSuccess, "applied 3 change(s)"))
	if rc.count() != 1 {
		t.Fatalf("requests: %d", rc.count())
	}
	r := rc.requests[0]
	if r.Method != http.MethodPost || r.URL.Path != "/hook" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != "driftless/1.2.3" {
		t.Errorf("request %s %s %v", r.Method, r.URL.Path, r.Header)
	}
	var got status.Report
	if err := json.Unmarshal(rc.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if want := testReport(status.StatusSuccess, "applied 3 change(s)"); got.Environment != want.Environment || got.Commit != want.Commit ||
		got.Status != want.Status || got.Description != want.Description || got.URL != want.URL || !got.Time.Equal(want.Time) {
		t.Errorf("payload %+v", got)
	}
}

func TestSlackWebhook(t *testing.T) {
	rc := &receiver{}
	srv := rc.start(t)
	rps := build(t, config.Notify{Slack: []config.NotifyWebhook{{URL: srv.URL}}}, srv, Options{}, nil)
	rps[0].Report(context.Background(), testReport(status.StatusRolledBack, "rolled back: check <http> & co failed"))
	if rc.count() != 1 {
		t.Fatalf("requests: %d", rc.count())
	}
	var msg map[string]any
	if err := json.Unmarshal(rc.bodies[0], &msg); err != nil {
		t.Fatal(err)
	}
	want := ":rewind: *staging* rolled back `0123456`: rolled back: check &lt;http&gt; &amp; co failed <http://driftless.test/environments/staging|status>"
	if msg["text"] != want || len(msg) != 1 {
		t.Errorf("slack message %v\nwant text %q", msg, want)
	}
}

func TestWebhookRetries(t *testing.T) {
	rc := &receiver{fail: 2}
	srv := rc.start(t)
	rps := build(t, config.Notify{Webhooks: []config.NotifyWebhook{{URL: srv.URL}}}, srv, Options{}, nil)
	rps[0].Report(context.Background(), testReport(status.StatusFailure, "failed"))
	if rc.count() != 3 {
		t.Errorf("attempts: %d, want 3 (two 500s, then success)", rc.count())
	}
}

func TestDeadReceiverDoesNotBlock(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(map[bool]string{false: "always 500", true: "never answers"}[hang], func(t *testing.T) {
			rc := &receiver{fail: 1 << 30, hang: hang}
			srv := rc.start(t)
			var logs syncbuf.Buffer
			secretURL := srv.URL + "/services/T000/B000/very-secret-token"
			rps := build(t, config.Notify{Slack: []config.NotifyWebhook{{URL: secretURL}}}, srv,
				Options{Timeout: 300 * time.Millisecond, Backoff: kit.Backoff{Attempts: 1000, Initial: 20 * time.Millisecond}}, &logs)
			start := time.Now()
			rps[0].Report(context.Background(), testReport(status.StatusFailure, "failed"))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Report took %v with a 300ms timeout", d)
			}
			if rc.count() == 0 {
				t.Error("the receiver was never tried")
			}
			if !strings.Contains(logs.String(), "cannot deliver the notification") {
				t.Errorf("failure not logged: %s", logs.String())
			}
			if strings.Contains(logs.String(), "very-secret-token") {
				t.Errorf("the log leaks the webhook URL: %s", logs.String())
			}
		})
	}
}

func TestEventsFilter(t *testing.T) {
	tests := []struct {
		events []string
		sent   []string
	}{
		{nil, []string{status.StatusSuccess, status.StatusFailure, status.StatusRolledBack, status.StatusDrift}},
		{[]string{"rollback", "drift"}, []string{status.StatusRolledBack, status.StatusDrift}},
		{[]string{"pending", "Failed"}, []string{status.StatusPending, status.StatusFailure}},
	}
	all := []string{status.StatusPending, status.StatusSuccess, status.StatusFailure, status.StatusRolledBack, status.StatusDrift, status.StatusPreview}
	for _, tt := range tests {
		t.Run(strings.Join(tt.events, ","), func(t *testing.T) {
			rc := &receiver{}
			srv := rc.start(t)
			rps := build(t, config.Notify{Webhooks: []config.NotifyWebhook{{URL: srv.URL, Events: tt.events}}}, srv, Options{}, nil)
			for _, st := range all {
				rps[0].Report(context.Background(), testReport(st, "x"))
			}
			var got []string
			for _, b := range rc.bodies {
				var r status.Report
				_ = json.Unmarshal(b, &r)
				got = append(got, r.Status)
			}
			if strings.Join(got, ",") != strings.Join(tt.sent, ",") {
				t.Errorf("sent %v, want %v", got, tt.sent)
			}
		})
	}
}

func TestNewWebhooks(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "slack.url")
	if err := os.WriteFile(urlFile, []byte("https://hooks.slack.test/services/secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rps, err := New(config.Notify{
		Webhooks: []config.NotifyWebhook{{URL: "http://hooks.test/a"}},
		Slack:    []config.NotifyWebhook{{URLRef: config.Secret{File: urlFile}}},
	}, Options{})
	if err != nil || len(rps) != 2 {
		t.Fatalf("New: %d, %v", len(rps), err)
	}
	if rps[0].(*Notifier).Name() != "webhooks[0]" || rps[1].(*Notifier).Name() != "slack[0]" {
		t.Errorf("names %s %s", rps[0].(*Notifier).Name(), rps[1].(*Notifier).Name())
	}
	bad := []struct {
		name string
		hook config.NotifyWebhook
		want string
	}{
		{"relative url", config.NotifyWebhook{URL: "/hook?token=secret"}, "want an absolute http(s) URL"},
		{"missing secret file", config.NotifyWebhook{URLRef: config.Secret{File: filepath.Join(dir, "none")}}, "url: read secret"},
		{"unknown event", config.NotifyWebhook{URL: "http://h.test/?token=secret", Events: []string{"deploy", "boom"}}, `unknown event "boom"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(config.Notify{Slack: []config.NotifyWebhook{tt.hook}}, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") && !strings.Contains(tt.want, "secret") {
				t.Errorf("error quotes the URL: %v", err)
			}
		})
	}
}

// panicSender stands for a bug in a destination's code.
type panicSender struct{}

func (panicSender) encode(status.Report) ([]byte, error) { return []byte("x"), nil }
func (panicSender) send(context.Context, []byte) error   { panic("bug in a sender") }

func TestPanickingSenderIsLogged(t *testing.T) {
	var logs bytes.Buffer
	n, err := newNotifier("broken", nil, panicSender{}, Options{Logger: zerolog.New(&logs)}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	n.Report(context.Background(), testReport(status.StatusFailure, "x"))
	if !strings.Contains(logs.String(), "notifier panicked") || !strings.Contains(logs.String(), "bug in a sender") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestSlackRateLimitHonoursRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	rps := build(t, config.Notify{Slack: []config.NotifyWebhook{{URL: srv.URL}}}, srv, Options{}, nil)
	rps[0].Report(context.Background(), testReport(status.StatusDrift, "x"))
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("attempts: %d, want 2", len(times))
	}
	if d := times[1].Sub(times[0]); d < time.Second {
		t.Errorf("retried after %v, before Retry-After's 1s", d)
	}
}

// TestGateNotices: a revision held at a gate is told by default (its
// gate and reason in the JSON), a rollout's start (pending without a gate)
// is not.
func TestGateNotices(t *testing.T) {
	rc := &receiver{}
	srv := rc.start(t)
	rps := build(t, config.Notify{Webhooks: []config.NotifyWebhook{{URL: srv.URL}}}, srv, Options{}, nil)
	rps[0].Report(context.Background(), testReport(status.StatusPending, "applying to 2 host(s)"))
	held := testReport(status.StatusPending, "awaiting approval of 0123456789ab")
	held.Gate = status.StateAwaitingApproval
	rps[0].Report(context.Background(), held)
	if rc.count() != 1 {
		t.Fatalf("notices: %d, want only the gate's", rc.count())
	}
	var got status.Report
	if err := json.Unmarshal(rc.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Gate != status.StateAwaitingApproval || got.Description != held.Description {
		t.Fatalf("notice %+v", got)
	}
}
