package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// TestCheckWindows evaluates the windows of testdata/good/gates at chosen
// moments: prod may deploy on weekdays 09:00-17:00 New York time, except
// within 8 hours after 22:00 UTC (a deny window that lets drift be
// corrected); staging never on a weekend in Paris.
func TestCheckWindows(t *testing.T) {
	rev, err := config.LoadRevision("testdata/good/gates", config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	prod, staging := rev.Environment("prod"), rev.Environment("staging")
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string, loc *time.Location) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name        string
		env         *config.Environment
		t           time.Time
		open, drift bool
		// until is when revisions may go through again (UTC; "" while open).
		until string
	}{
		{"prod weekday morning", prod, at("2026-12-02 10:00", ny), true, true, ""},
		{"prod weekday before nine", prod, at("2026-12-02 08:59", ny), false, false, "2026-12-02 14:00"},
		// After five the deny window (22:00 UTC for 8 hours) follows at
		// once; the next allowed moment is Thursday 09:00 in New York.
		{"prod weekday at five", prod, at("2026-12-02 17:00", ny), false, true, "2026-12-03 14:00"},
		{"prod saturday", prod, at("2026-12-05 10:00", ny), false, false, "2026-12-07 14:00"},
		// 22:00 UTC is 17:00 in New York in winter: outside the allow
		// window, but the open deny window decides (it lets drift be
		// corrected); 16:30 New York is 21:30 UTC, before the deny.
		{"prod deny window opens", prod, at("2026-12-02 22:00", time.UTC), false, true, "2026-12-03 14:00"},
		{"prod before deny", prod, at("2026-12-02 16:30", ny), true, true, ""},
		{"staging friday", staging, at("2026-12-04 22:30", time.UTC), true, true, ""},
		// Saturday 00:30 in Paris: closed until Monday 00:00 there.
		{"staging saturday in Paris", staging, at("2026-12-04 23:30", time.UTC), false, false, "2026-12-06 23:00"},
		{"staging monday in Paris", staging, at("2026-12-06 23:00", time.UTC), true, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := config.CheckWindows(c.env.Windows, c.t)
			if v.Open != c.open || v.Drift != c.drift || (v.Reason == "") != c.open {
				t.Errorf("at %s: %+v, want open=%v drift=%v", c.t.UTC(), v, c.open, c.drift)
			}
			until := ""
			if !v.Until.IsZero() {
				until = v.Until.UTC().Format("2006-01-02 15:04")
			}
			if until != c.until {
				t.Errorf("at %s: closed until %q, want %q", c.t.UTC(), until, c.until)
			}
		})
	}
	// The deny window alone lets drift be corrected while it holds.
	deny := prod.Windows[1:]
	if v := config.CheckWindows(deny, at("2026-12-03 03:00", time.UTC)); v.Open || !v.Drift || !v.Until.Equal(at("2026-12-03 06:00", time.UTC)) {
		t.Errorf("inside the deny window: %+v, want closed until 06:00 UTC with drift correction", v)
	}
	if v := config.CheckWindows(deny, at("2026-12-03 06:00", time.UTC)); !v.Open {
		t.Errorf("after the deny window: %+v, want open", v)
	}
}

// TestWindowsClosedUntil finds the end of a closed period where it is far
// (a monthly schedule), and none where the windows never open.
func TestWindowsClosedUntil(t *testing.T) {
	dir := t.TempDir()
	env := `environment: %s
windows:
%s
hosts:
  - name: h1
    transport: local
`
	for name, w := range map[string]string{
		"monthly": "  - {kind: allow, schedule: \"0 10 1 * *\", duration: 2h, timezone: Europe/Paris}",
		"never":   "  - {kind: deny, days: [mon, tue, wed, thu, fri, sat, sun]}",
	} {
		writeEnv(t, dir, name, fmt.Sprintf(env, name, w))
	}
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	v := config.CheckWindows(rev.Environment("monthly").Windows, now)
	if want := time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC); v.Open || !v.Until.Equal(want) {
		t.Errorf("monthly allow window: %+v, want closed until %s", v, want)
	}
	if v := config.CheckWindows(rev.Environment("monthly").Windows, time.Date(2027, 1, 1, 10, 30, 0, 0, time.UTC)); !v.Open {
		t.Errorf("monthly allow window on the first at 11:30 Paris: %+v, want open", v)
	}
	if v := config.CheckWindows(rev.Environment("never").Windows, now); v.Open || !v.Until.IsZero() {
		t.Errorf("a deny window every day: %+v, want closed with no end", v)
	}
}

func writeEnv(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, "environments", name+".yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
