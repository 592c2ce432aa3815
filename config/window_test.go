package config_test

import (
	"testing"
	"time"

	"github.com/driftless/driftless/config"
)

// TestCheckWindows evaluates the windows of testdata/good/gates at chosen
// moments: prod may deploy on weekdays 09:00-17:00 New York time, except
// within 8 hours after 22:00 UTC (a deny window that lets drift be
// corrected); staging never on a weekend in Paris.
func TestCheckWindows(t *testing.T) {
	rev, err := config.LoadRevision("testdata/good/gates", config.LoadOptions{})
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
	}{
		{"prod weekday morning", prod, at("2026-12-02 10:00", ny), true, true},
		{"prod weekday before nine", prod, at("2026-12-02 08:59", ny), false, false},
		{"prod weekday at five", prod, at("2026-12-02 17:00", ny), false, true},
		{"prod saturday", prod, at("2026-12-05 10:00", ny), false, false},
		// 22:00 UTC is 17:00 in New York in winter: outside the allow
		// window, but the open deny window decides (it lets drift be
		// corrected); 16:30 New York is 21:30 UTC, before the deny.
		{"prod deny window opens", prod, at("2026-12-02 22:00", time.UTC), false, true},
		{"prod before deny", prod, at("2026-12-02 16:30", ny), true, true},
		{"staging friday", staging, at("2026-12-04 22:30", time.UTC), true, true},
		{"staging saturday in Paris", staging, at("2026-12-04 23:30", time.UTC), false, false},
		{"staging monday in Paris", staging, at("2026-12-06 23:00", time.UTC), true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := config.CheckWindows(c.env.Windows, c.t)
			if v.Open != c.open || v.Drift != c.drift || (v.Reason == "") != c.open {
				t.Errorf("at %s: %+v, want open=%v drift=%v", c.t.UTC(), v, c.open, c.drift)
			}
		})
	}
	// The deny window alone lets drift be corrected while it holds.
	deny := prod.Windows[1:]
	if v := config.CheckWindows(deny, at("2026-12-03 03:00", time.UTC)); v.Open || !v.Drift {
		t.Errorf("inside the deny window: %+v, want closed with drift correction", v)
	}
	if v := config.CheckWindows(deny, at("2026-12-03 06:00", time.UTC)); !v.Open {
		t.Errorf("after the deny window: %+v, want open", v)
	}
}
