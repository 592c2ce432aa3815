package reconciler

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// stepClock is a clock the test moves by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// reportsOf returns the descriptions of the reports with status.
func (c *collector) reportsOf(status string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.reports {
		if r.Status == status {
			out = append(out, r.Description)
		}
	}
	return out
}

// TestDriftNoticesOnChangeOfState runs twenty drift passes, five minutes
// apart, over a drift nobody touches: one notice, and one reminder an hour
// later. Drift that grows, and drift that is gone, are each one notice.
func TestDriftNoticesOnChangeOfState(t *testing.T) {
	clock := &stepClock{now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *Options) { o.Clock, o.NotifyReminder = kit.NowFunc(clock.Now), time.Hour })
	ctx := context.Background()
	res := etc + fileRes("/etc/w.conf", "w") + "      drift: warn\n" + fileRes("/etc/v.conf", "v") + "      drift: warn\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
	if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	passes := func(n int) {
		t.Helper()
		for range n {
			clock.add(5 * time.Minute)
			if err := f.r.Sync(ctx, "prod"); err != nil {
				t.Fatal(err)
			}
		}
		_ = f.r.Close() // wait for the reports to be delivered
	}
	f.writeHostFile("h1", "/etc/w.conf", "edited")
	passes(20)
	got := f.rep.reportsOf(status.StatusDrift)
	if len(got) != 2 || got[0] != got[1] || !strings.Contains(got[0], "h1:file:/etc/w.conf") {
		t.Fatalf("over 20 passes (100 minutes) of the same drift, with a reminder every hour: %d notices %q; want the notice and one reminder", len(got), got)
	}
	f.writeHostFile("h1", "/etc/v.conf", "edited")
	passes(3)
	if got = f.rep.reportsOf(status.StatusDrift); len(got) != 3 || !strings.Contains(got[2], "2 resource(s) drifted") {
		t.Fatalf("after the drift grew: %q; want one notice more, naming both", got)
	}
	f.writeHostFile("h1", "/etc/w.conf", "w")
	f.writeHostFile("h1", "/etc/v.conf", "v")
	passes(5)
	if got = f.rep.reportsOf(status.StatusDrift); len(got) != 4 || !strings.Contains(got[3], "no drift left") {
		t.Fatalf("after the hosts were put back by hand: %q; want one notice more, saying the drift is gone", got)
	}
}

// TestFailureNoticesOnChangeOfState keeps a host unreachable over ten
// passes: the environment starts failing once, and stops once.
func TestFailureNoticesOnChangeOfState(t *testing.T) {
	clock := &stepClock{now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *Options) { o.Clock, o.NotifyReminder = kit.NowFunc(clock.Now), time.Hour })
	ctx := context.Background()
	port := closedPort(t)
	far := "  - name: far\n    address: 127.0.0.1\n    port: " + port + "\n    roles: [all]\n"
	yaml := envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")
	withFar := strings.Replace(yaml, "roles:\n  all:", far+"roles:\n  all:", 1)
	rev := f.revision(map[string]string{"environments/prod.yaml": withFar})
	if _, err := f.r.ApplyRevision(ctx, rev); err == nil {
		t.Fatal("a rollout with an unreachable host succeeded")
	}
	for range 10 {
		clock.add(5 * time.Minute)
		if err := f.r.Sync(ctx, "prod"); err == nil {
			t.Fatal("a pass with an unreachable host succeeded")
		}
	}
	_ = f.r.Close()
	if got := f.rep.reportsOf(status.StatusFailure); len(got) != 1 {
		t.Fatalf("11 failing passes in 50 minutes: %d failure notices %q; want 1", len(got), got)
	}
	// The host goes out of the declaration: the environment stops failing.
	rev2 := f.revision(map[string]string{"environments/prod.yaml": yaml})
	if _, err := f.r.ApplyRevision(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	_ = f.r.Close()
	if got := f.rep.reportsOf(status.StatusSuccess); len(got) != 1 {
		t.Fatalf("success notices after the failure: %q; want 1", got)
	}
}
