package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
)

func TestHTTP(t *testing.T) {
	big := strings.Repeat("a", maxBody) + "MARKER"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprint(w, `{"status":"ok","version":"1.4.2"}`)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "maintenance")
		case "/created":
			w.WriteHeader(http.StatusCreated)
		case "/big":
			fmt.Fprint(w, big)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name     string
		check    config.Check
		ok       bool
		attempts int
		reason   []string
	}{
		{"status 200", config.Check{HTTP: srv.URL + "/healthz"}, true, 1, []string{"status 200"}},
		{"status mismatch", config.Check{HTTP: srv.URL + "/down"}, false, 1, []string{"expected status 200, got 503", `"maintenance"`}},
		{"expected other status", config.Check{HTTP: srv.URL + "/created", ExpectStatus: 201}, true, 1, []string{"status 201"}},
		{"404 not expected", config.Check{HTTP: srv.URL + "/nope", ExpectStatus: 201}, false, 1, []string{"expected status 201, got 404"}},
		{"body matches", config.Check{HTTP: srv.URL + "/healthz", ExpectBody: `"version":"1\.4\.\d+"`}, true, 1, []string{"body matches"}},
		{"body does not match", config.Check{HTTP: srv.URL + "/healthz", ExpectBody: `"version":"2\.`}, false, 1, []string{"does not match", `1.4.2`}},
		{"body read only to 1 MiB", config.Check{HTTP: srv.URL + "/big", ExpectBody: "MARKER"}, false, 1, []string{"does not match /MARKER/"}},
		{"bad regexp", config.Check{HTTP: srv.URL, ExpectBody: "("}, false, 0, []string{"invalid http check: expect_body"}},
		{"bad scheme", config.Check{HTTP: "ftp://example.invalid/"}, false, 0, []string{"is not an http or https URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRunner(t)
			res := r.Check(context.Background(), tc.check, &config.Host{Name: "web-1"}, nil)
			if res.OK != tc.ok || res.Attempts != tc.attempts || res.Kind != "http" || res.Label != "http" || res.Host != "web-1" {
				t.Fatalf("got %+v, want ok=%v attempts=%d", res, tc.ok, tc.attempts)
			}
			for _, want := range tc.reason {
				if !strings.Contains(res.Reason, want) {
					t.Errorf("reason %q lacks %q", res.Reason, want)
				}
			}
		})
	}
}

// TestHTTPTimeout has a server that never answers in time: each attempt
// gives up at its own timeout and the reason says so.
func TestHTTPTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	r, clock := newTestRunner(t)
	c := config.Check{HTTP: srv.URL, Timeout: config.Duration(100 * time.Millisecond), Retries: 1}
	res := r.Check(context.Background(), c, &config.Host{Name: "web-1"}, nil)
	if res.OK || res.Attempts != 2 {
		t.Fatalf("got %+v, want 2 failed attempts", res)
	}
	if !strings.Contains(res.Reason, "no answer within 100ms") || !strings.Contains(res.Reason, "expected status 200") {
		t.Errorf("reason %q does not say it timed out", res.Reason)
	}
	if got := clock.slept(); len(got) != 1 || got[0] != DefaultInterval {
		t.Errorf("slept %v, want one default interval %s", got, DefaultInterval)
	}
}

// TestHTTPRetriesSucceed fails twice, then answers: the check passes on
// its third attempt after two pauses of the configured interval.
func TestHTTPRetriesSucceed(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ready")
	}))
	defer srv.Close()
	r, clock := newTestRunner(t)
	c := config.Check{HTTP: srv.URL, ExpectBody: "^ready$", Retries: 10, Interval: config.Duration(3 * time.Second)}
	res := r.Check(context.Background(), c, &config.Host{Name: "web-1"}, nil)
	if !res.OK || res.Attempts != 3 || calls.Load() != 3 {
		t.Fatalf("got %+v after %d calls, want success on attempt 3", res, calls.Load())
	}
	if got := clock.slept(); len(got) != 2 || got[0] != 3*time.Second || got[1] != 3*time.Second {
		t.Errorf("slept %v, want two pauses of 3s", got)
	}
	if res.Duration < 6*time.Second {
		t.Errorf("duration %s does not include the two pauses", res.Duration)
	}
}

// TestHTTPRetriesExhausted never succeeds: 1 + Retries attempts, and the
// reason is the last one seen.
func TestHTTPRetriesExhausted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	r, _ := newTestRunner(t)
	res := r.Check(context.Background(), config.Check{HTTP: srv.URL, Retries: 2}, &config.Host{Name: "web-1"}, nil)
	if res.OK || res.Attempts != 3 || calls.Load() != 3 {
		t.Fatalf("got %+v after %d calls, want 3 failed attempts", res, calls.Load())
	}
	if !strings.Contains(res.Reason, "expected status 200, got 500") {
		t.Errorf("reason %q", res.Reason)
	}
}

// TestHTTPCredentialsRedacted keeps credentials in the URL out of the
// result, even when the request fails: a password, and a token written as
// the user name.
func TestHTTPCredentialsRedacted(t *testing.T) {
	l := closedPort(t)
	r, _ := newTestRunner(t)
	for _, u := range []string{"http://user:s3cret@" + l + "/", "http://s3cret@" + l + "/", "http://s3cret@" + l + "/%zz"} {
		res := r.Check(context.Background(), config.Check{HTTP: u}, &config.Host{Name: "h"}, nil)
		if res.OK {
			t.Fatalf("check against a closed port passed: %+v", res)
		}
		if strings.Contains(res.Reason+res.Check, "s3cret") {
			t.Errorf("credentials leaked: %+v", res)
		}
		if !strings.Contains(u, "%zz") && !strings.Contains(res.Reason, "connection refused") {
			t.Errorf("reason %q does not say the connection was refused", res.Reason)
		}
	}
}
