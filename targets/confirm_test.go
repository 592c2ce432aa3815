package targets_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// netDrivers is the driver table with short confirm timeouts.
func netDrivers(confirm time.Duration) map[string]targets.Driver {
	return targets.WithConfirmTimeout(targets.Drivers(), confirm)
}

func TestWithConfirmTimeout(t *testing.T) {
	ds := targets.WithConfirmTimeout(targets.Drivers(), 7*time.Second)
	if len(ds) != len(targets.Drivers()) {
		t.Fatalf("%d rows, want %d", len(ds), len(targets.Drivers()))
	}
	for kind, d := range ds {
		var got time.Duration
		switch d := d.(type) {
		case *targets.AddressDriver:
			got = d.ConfirmTimeout
		case *targets.RouteDriver:
			got = d.ConfirmTimeout
		case *targets.FirewallDriver:
			got = d.ConfirmTimeout
		default:
			continue
		}
		if got != 7*time.Second || d.Kind() != kind {
			t.Errorf("%s: confirm timeout %s, kind %s", kind, got, d.Kind())
		}
	}
	if d := targets.WithConfirmTimeout(targets.Drivers(), 0)["firewall"].(*targets.FirewallDriver); d.ConfirmTimeout != 0 {
		t.Errorf("zero timeout changed the default: %s", d.ConfirmTimeout)
	}
}

// armedJobs lists what is left of armed reverts on the host: files in the
// confirm folder and processes whose command line names it.
func armedJobs(t *testing.T, h *hosts.Host) string {
	t.Helper()
	return h.MustExec(t, `ls -A /run/driftless-confirm 2>/dev/null
for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\0' ' ' | grep -q '[.]armed /run/driftless-confirm' && echo "process $p"; done; true`)
}

// TestApplyConfirmed drives the commit-confirmed protocol itself: a change
// confirmed through a new connection stays (its revert never fires, even
// past the timeout, and nothing of it is left); a failed apply is reverted
// at once; a change after which no new connection can be opened is
// reported as a cut-off and reverted by the host itself.
func TestApplyConfirmed(t *testing.T) { testApplyConfirmed(t, netHost(t, "confirm")) }

func testApplyConfirmed(t *testing.T, n netTarget) {
	h, tr, ctx := n.h, n.tr, n.ctx
	const timeout = 4 * time.Second
	restore := "echo reverted >> /root/reverted"
	reverted := func() string {
		return h.MustExec(t, "cat /root/reverted 2>/dev/null; rm -f /root/reverted")
	}
	apply := func(ctx context.Context) error {
		_, err := tr.Run(ctx, "echo applied >> /root/applied", nil)
		return err
	}

	t.Run("confirmed", func(t *testing.T) {
		trips := n.ssh.RoundTrips()
		if err := targets.ApplyConfirmed(ctx, tr, timeout, restore, apply); err != nil {
			t.Fatal(err)
		}
		// The apply is one SSH script here; arming the revert is another
		// on the shell path, and goes through the agent when there is one.
		// The confirmation always takes a new connection.
		if got, want := n.ssh.RoundTrips()-trips, 1+n.planTrips(); got != want {
			t.Fatalf("a confirmed change made %d SSH round trips on its connection, want %d", got, want)
		}
		if left := armedJobs(t, h); left != "" {
			t.Fatalf("a confirmed change left its revert armed:\n%s", left)
		}
		time.Sleep(timeout + time.Second)
		if got := reverted(); got != "" {
			t.Fatalf("the revert of a confirmed change ran: %q", got)
		}
	})
	t.Run("apply fails", func(t *testing.T) {
		err := targets.ApplyConfirmed(ctx, tr, timeout, restore, func(context.Context) error { return errors.New("boom") })
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("err = %v, want the apply's error", err)
		}
		if got := reverted(); got != "reverted\n" {
			t.Fatalf("a failed apply was not reverted at once: %q", got)
		}
		if left := armedJobs(t, h); left != "" {
			t.Fatalf("a reverted change left its revert armed:\n%s", left)
		}
	})
	t.Run("cut off", func(t *testing.T) {
		start := time.Now()
		err := targets.ApplyConfirmed(ctx, n.cutOff(), timeout, restore, apply)
		if !errors.Is(err, targets.ErrCutOff) || !strings.Contains(err.Error(), "reverts the change by itself") {
			t.Fatalf("err = %v, want a cut-off", err)
		}
		if got := reverted(); got != "" {
			t.Fatalf("reverted before the timeout (after %s): %q", time.Since(start), got)
		}
		waitFor(t, timeout+5*time.Second, func() bool {
			return strings.Contains(h.MustExec(t, "cat /root/reverted 2>/dev/null; true"), "reverted")
		})
		if elapsed := time.Since(start); elapsed < timeout {
			t.Fatalf("reverted after %s, before the %s timeout", elapsed, timeout)
		}
	})
	t.Run("a confirmed change disarms an older revert", func(t *testing.T) {
		reverted()
		// A cut-off change leaves its revert armed; the rollback (here, a
		// later change) is confirmed through a new connection before it
		// fires. The old revert must not fire afterwards and put back a
		// state older than the confirmed one. The long timeout leaves room
		// for a slow handshake on a loaded machine.
		const long = 12 * time.Second
		err := targets.ApplyConfirmed(ctx, n.cutOff(), long, "echo stale >> /root/reverted", apply)
		if !errors.Is(err, targets.ErrCutOff) {
			t.Fatalf("err = %v, want a cut-off", err)
		}
		if left := armedJobs(t, h); !strings.Contains(left, ".armed") {
			t.Fatalf("the cut-off change armed no revert:\n%s", left)
		}
		// Armed at least a second later, so the file times tell them apart.
		time.Sleep(1100 * time.Millisecond)
		if err := targets.ApplyConfirmed(ctx, tr, long, restore, apply); err != nil {
			t.Fatal(err)
		}
		// The fired revert of the previous subtest leaves its .log and
		// .done; nothing may be armed or sleeping.
		if left := armedJobs(t, h); strings.Contains(left, ".armed") || strings.Contains(left, "process") || strings.Contains(left, ".sh") {
			t.Fatalf("the confirmed change left an older revert armed:\n%s", left)
		}
		time.Sleep(long)
		if got := reverted(); got != "" {
			t.Fatalf("a revert ran after a newer change was confirmed: %q", got)
		}
	})
}

// waitFor polls cond every 100 ms until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("condition still false after %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFirewallCutOffRevertsItself turns a firewall that allows 8080 under
// an accept policy into one that drops every other new connection (so no
// new SSH connection either), with a real host and a
// real redial: the apply is reported as cut off, the host puts the previous
// table back by itself within the confirm timeout, and SSH works again.
func TestFirewallCutOffRevertsItself(t *testing.T) {
	testFirewallCutOff(t, netHost(t, "fwcut"))
}

func testFirewallCutOff(t *testing.T, n netTarget) {
	h, tr, ctx := n.h, n.tr, n.ctx
	const timeout = 4 * time.Second
	ds := netDrivers(timeout)
	fw := ds["firewall"]
	open := config.Resource{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{Allow: []string{"tcp/8080"}}}
	if err := fw.Apply(ctx, tr, open, targets.State{}); err != nil {
		t.Fatalf("a harmless firewall: %v", err)
	}
	prior := h.MustExec(t, "nft list ruleset")
	// The harmless change was confirmed: past the timeout it is still there.
	time.Sleep(timeout + time.Second)
	if now := h.MustExec(t, "nft list ruleset"); now != prior || armedJobs(t, h) != "" {
		t.Fatalf("a confirmed firewall did not stay:\n%s\nwant\n%s\nleft: %s", now, prior, armedJobs(t, h))
	}

	bad := config.Resource{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{
		Allow: []string{"tcp/8080"}, Policy: "drop"}}
	start := time.Now()
	err := fw.Apply(ctx, tr, bad, targets.State{})
	if !errors.Is(err, targets.ErrCutOff) {
		t.Fatalf("a firewall without SSH: err = %v, want a cut-off", err)
	}
	t.Logf("reported after %s: %v", time.Since(start).Round(time.Millisecond), err)
	waitFor(t, timeout+5*time.Second, func() bool { return h.MustExec(t, "nft list ruleset") == prior })
	t.Logf("host reverted itself %s after the apply began", time.Since(start).Round(time.Millisecond))
	reachableAgain(t, n, bad)
	if left := armedJobs(t, h); strings.Contains(left, "process") || strings.Contains(left, ".armed") {
		t.Fatalf("the revert left a job behind:\n%s", left)
	}
}

// BenchmarkApplyConfirmed measures what commit-confirming costs over real
// SSH: arming the revert, the change itself, a new connection (a full
// handshake) and the disarm through it, against the change run alone.
func BenchmarkApplyConfirmed(b *testing.B) {
	if os.Geteuid() != 0 {
		need.Missing(b, "test hosts need root")
	}
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("bconfirm")
	ctx := context.Background()
	tr := srvDial(b, lab, h)
	apply := func(ctx context.Context) error {
		_, err := tr.Run(ctx, "true", nil)
		return err
	}
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			if err := apply(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("confirmed", func(b *testing.B) {
		for b.Loop() {
			if err := targets.ApplyConfirmed(ctx, tr, 30*time.Second, "true", apply); err != nil {
				b.Fatal(err)
			}
		}
	})
}
