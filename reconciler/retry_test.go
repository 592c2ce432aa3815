package reconciler

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
)

// sleepClock is a test clock whose Sleep records how long it was asked to
// wait and then waits for the test to release it; its time moves only by
// the sleeps released.
type sleepClock struct {
	mu      sync.Mutex
	now     time.Time
	asked   []time.Duration
	release chan struct{}
}

func (c *sleepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *sleepClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.asked = append(c.asked, d)
	c.mu.Unlock()
	select {
	case <-c.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *sleepClock) sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.asked...)
}

// TestRetryBackoffThenStall: a rollout that fails for a transient reason
// (a host not reached) is tried again after waits that double (jittered by
// at most a quarter); its class is transient, with the retry's time, in
// the API and on the status page. A revision that then stalls (rolled
// back) is not tried again, and nothing waits, until a new revision comes.
func TestRetryBackoffThenStall(t *testing.T) {
	clock := &sleepClock{now: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC), release: make(chan struct{})}
	const initial = 10 * time.Second
	f := newFixture(t, func(o *Options) {
		o.Clock, o.DriftInterval, o.Retry.Initial = clock, time.Hour, initial
	})
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Now: clock.Now}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	revs := runDaemon(t, f)

	far := "environment: prod\nhosts:\n  - name: far\n    address: 127.0.0.1\n    port: " + closedPort(t) +
		"\n    roles: [all]\nroles:\n  all:\n" + fileRes("/etc/a.conf", "a\n")
	revs <- f.revision(map[string]string{"environments/prod.yaml": far})
	const retries = 4
	for n := 1; n <= retries; n++ {
		eventually(t, "a retry waits", func() bool { return len(clock.sleeps()) == n })
		d := clock.sleeps()[n-1]
		base := initial << (n - 1)
		if d < base || d > base+base/4 {
			t.Fatalf("wait %d = %v, want %v plus at most a quarter", n, d, base)
		}
		st, _ := f.r.Environment("prod")
		if st.Class != status.ClassTransient || st.Retries != n || st.RetryAt.IsZero() {
			t.Fatalf("after failure %d: class %q, retries %d, retry at %v", n, st.Class, st.Retries, st.RetryAt)
		}
		if n == 1 {
			_, _, body := apiGet(t, srv, "/api/v1/environments/prod")
			if got := decode[status.EnvStatus](t, []byte(body)); got.Class != status.ClassTransient || !got.RetryAt.Equal(st.RetryAt) || got.Retries != 1 {
				t.Errorf("API does not show the class and the retry: %s", body)
			}
			_, _, page := apiGet(t, srv, "/environments/prod")
			if !strings.Contains(page, "(transient, retry 1 at ") {
				t.Errorf("status page does not show the class and the retry:\n%s", page)
			}
		}
		clock.release <- struct{}{}
	}
	eventually(t, "the last retry ran and waits again", func() bool { return len(clock.sleeps()) == retries+1 })
	hist, _ := f.r.History("prod", 0)
	if len(hist) != retries+1 || hist[0].Trigger != status.TriggerRetry || hist[retries].Trigger != status.TriggerRevision {
		t.Fatalf("history: %+v", hist)
	}

	// A revision that stalls: its check fails, it is rolled back.
	stall := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
		etc+fileRes("/etc/a.conf", "stalls\n"), "verify:\n  - command: \"false\"\n")})
	revs <- stall
	eventually(t, "the stalled revision rolled back", func() bool {
		st, _ := f.r.Environment("prod")
		// The series follows the record a moment later.
		return st.Class == status.ClassStalled && st.LastResult == status.ResultRolledBack && notReady(f, "stalled") == 1
	})
	asked := len(clock.sleeps())
	if st, _ := f.r.Environment("prod"); !st.RetryAt.IsZero() || st.Retries != 0 {
		t.Fatalf("a stalled revision has a retry: %+v", st)
	}
	if n := notReady(f, "transient"); n != 0 {
		t.Errorf("driftless_environment_not_ready{reason=transient} = %v once stalled, want 0", n)
	}
	// Only a new revision moves it.
	good := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "good\n"), "")})
	revs <- good
	eventually(t, "the new revision applied", func() bool {
		st, _ := f.r.Environment("prod")
		return st.Applied == good.Commit && st.Class == ""
	})
	if got := f.hostFile("h1", "/etc/a.conf"); got != "good\n" {
		t.Fatalf("a.conf = %q", got)
	}
	if n := len(clock.sleeps()); n != asked {
		t.Fatalf("%d retries were scheduled after the revision stalled", n-asked)
	}
	hist, _ = f.r.History("prod", 0)
	for _, run := range hist[:2] {
		if run.Trigger != status.TriggerRevision {
			t.Errorf("run %d of %s: trigger %s, want revision (no retry of a stalled revision)", run.ID, run.Revision.Short(), run.Trigger)
		}
	}
}

// apiGet reads path from srv.
func apiGet(t *testing.T, srv *httptest.Server, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b.String()
}

// notReady reads driftless_environment_not_ready{environment="prod", reason}.
func notReady(f *fixture, reason string) float64 {
	return testutil.ToFloat64(f.r.m.notReady.WithLabelValues("prod", reason))
}
