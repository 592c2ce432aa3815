package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock advances only when the retry loop sleeps, so tests of
// retries with a 2 s interval run at once and can count the pauses.
type fakeClock struct {
	// onSleep, when set, runs at the start of each Sleep.
	onSleep func()
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.onSleep != nil {
		c.onSleep()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newTestRunner returns a runner on a fake clock with its own HTTP
// client, whose idle connections are closed when the test ends so the
// leak check sees no keep-alive goroutines.
func newTestRunner(t *testing.T) (*Runner, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return New(Options{HTTPClient: client, Logger: zerolog.Nop(), Clock: clock}), clock
}

// TestRunAllChecks runs a host's checks and gets one result per check, in
// order, a failure not stopping the others.
func TestRunAllChecks(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	r, _ := newTestRunner(t)
	h := &config.Host{Name: "web-1", Checks: []config.Check{
		{Name: "bad", HTTP: ok.URL, ExpectStatus: 500},
		{HTTP: ok.URL},
		{},
	}}
	res := r.Run(context.Background(), "staging", h, nil)
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(res), res)
	}
	want := []struct {
		check, label, kind string
		ok                 bool
	}{{"bad", "bad", "http", false}, {"http:" + ok.URL, "http#2", "http", true}, {"invalid", "invalid#3", "", false}}
	for i, w := range want {
		if res[i].Check != w.check || res[i].Label != w.label || res[i].Kind != w.kind || res[i].OK != w.ok || res[i].Host != "web-1" {
			t.Errorf("result %d = %+v, want check %q label %q kind %q ok %v on web-1", i, res[i], w.check, w.label, w.kind, w.ok)
		}
	}
	if res[2].Attempts != 0 || !strings.Contains(res[2].Reason, "none of http, tcp, command, prometheus") {
		t.Errorf("empty check: %+v", res[2])
	}
}

// TestRetriesStopWhenContextEnds cancels the context: the loop stops
// before its next attempt and says why.
func TestRetriesStopWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	r, clock := newTestRunner(t)
	clock.onSleep = cancel
	res := r.Check(ctx, config.Check{HTTP: srv.URL, Retries: 5}, &config.Host{Name: "h"}, nil)
	if res.OK || res.Attempts != 1 || calls.Load() != 1 {
		t.Fatalf("got %+v after %d calls, want one failed attempt", res, calls.Load())
	}
	if !strings.Contains(res.Reason, "expected status 200, got 503") || !strings.Contains(res.Reason, "context canceled") {
		t.Errorf("reason %q does not say what was seen and why it stopped", res.Reason)
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		c    config.Check
		want string
	}{
		{config.Check{Name: "api", HTTP: "http://x/"}, "api"},
		{config.Check{HTTP: "http://u:secret@x/health"}, "http:http://***@x/health"},
		{config.Check{TCP: "10.0.0.1:22"}, "tcp:10.0.0.1:22"},
		{config.Check{Command: "true"}, "command:true"},
		{config.Check{Prometheus: "up", Server: "http://p"}, "prometheus:up"},
	} {
		if got := Name(tc.c); got != tc.want {
			t.Errorf("Name(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestPanicIsAFailedAttempt checks that a panicking attempt becomes a
// failed result rather than a crash.
func TestPanicIsAFailedAttempt(t *testing.T) {
	okReason, err := safely(context.Background(), func(context.Context) (string, error) { panic("boom") })
	if err == nil || okReason != "" || !strings.Contains(err.Error(), "check panicked: boom") {
		t.Fatalf("got %q, %v", okReason, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c   config.Check
		err string
	}{
		{config.Check{HTTP: "http://10.0.0.1:8080/healthz", ExpectBody: "ok$"}, ""},
		{config.Check{TCP: "10.0.0.1:22"}, ""},
		{config.Check{Command: "systemctl is-active app"}, ""},
		{config.Check{Command: "true", On: "local"}, ""},
		{config.Check{Prometheus: "up", Server: "http://127.0.0.1:9090", Op: "=="}, ""},
		{config.Check{}, "none of http, tcp, command, prometheus"},
		{config.Check{HTTP: "http://x/", ExpectBody: "[a-"}, "invalid http check http:http://x/: expect_body"},
		{config.Check{HTTP: "10.0.0.1:8080/healthz"}, "invalid http check"},
		{config.Check{TCP: "10.0.0.1"}, "is not a host:port address"},
		{config.Check{Command: "true", On: "remote"}, "is not one of host, local"},
		{config.Check{Prometheus: "up", Server: "http://p:9090", Op: "gt"}, `op: "gt"`},
		{config.Check{Prometheus: "up"}, "needs server"},
		{config.Check{Prometheus: "up", Server: "p:9090"}, "is not an http or https URL"},
	} {
		err := Validate(tc.c)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.c, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.c, err, tc.err)
		}
	}
}

// TestAttemptsHook: under WithAttempts, every attempt of a check is
// reported with its number and the most that may run; the last one says
// whether the check passed.
func TestAttemptsHook(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	r, _ := newTestRunner(t)
	var got []Attempt
	ctx := WithAttempts(context.Background(), func(a Attempt) { got = append(got, a) })
	res := r.Check(ctx, config.Check{Name: "api", HTTP: srv.URL, Retries: 4}, &config.Host{Name: "h"}, nil)
	want := []Attempt{
		{Check: "api", Host: "h", N: 1, Of: 5},
		{Check: "api", Host: "h", N: 2, Of: 5},
		{Check: "api", Host: "h", N: 3, Of: 5, OK: true},
	}
	if !res.OK || !reflect.DeepEqual(got, want) {
		t.Fatalf("result %+v, attempts reported %+v, want %+v", res, got, want)
	}
	// Without the hook nothing is reported and nothing breaks.
	if res := r.Check(context.Background(), config.Check{HTTP: srv.URL}, &config.Host{Name: "h"}, nil); !res.OK {
		t.Fatalf("check without hook: %+v", res)
	}
}

// TestRunHidesDecryptedValues: a check whose URL carries a decrypted
// value fails, and neither its name nor its reason, nor the log line, nor
// the progress events of its attempts, quotes the value.
func TestRunHidesDecryptedValues(t *testing.T) {
	const secret = "s3cret-token-42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	var logs strings.Builder
	r := New(Options{HTTPClient: srv.Client(), Logger: zerolog.New(&logs), Clock: newFakeClock()})
	h := &config.Host{Name: "web-1", SecretValues: []string{secret}, Checks: []config.Check{{HTTP: srv.URL + "/?token=" + secret}}}
	var attempts []Attempt
	ctx := WithAttempts(context.Background(), func(a Attempt) { attempts = append(attempts, a) })
	res := r.Run(ctx, "prod", h, nil)
	if len(res) != 1 || res[0].OK || len(attempts) != 1 {
		t.Fatalf("results = %+v, attempts %+v, want one failure", res, attempts)
	}
	if got := fmt.Sprintf("%+v %s %+v", res[0], logs.String(), attempts); strings.Contains(got, secret) {
		t.Errorf("the decrypted value shows: %s", got)
	}
}
