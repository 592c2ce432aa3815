package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// Window is a deploy window, as Argo CD's sync windows: an allow window
// lets revisions through while it is open, a deny window holds them back
// while it is open. It is open either on some weekdays between two times
// of day, or for Duration after each time Schedule (a cron expression)
// fires, both in TimeZone.
type Window struct {
	// Kind is "allow" or "deny".
	Kind     string   `yaml:"kind" json:"kind"`
	Days     []string `yaml:"days" json:"days,omitempty"`
	Hours    string   `yaml:"hours" json:"hours,omitempty"`
	Schedule string   `yaml:"schedule" json:"schedule,omitempty"`
	Duration Duration `yaml:"duration" json:"duration,omitempty"`
	// TimeZone is an IANA name ("Europe/Paris"; empty: UTC).
	TimeZone string `yaml:"timezone" json:"timezone,omitempty"`
	// Drift says whether the drift loop still corrects drift while this
	// window holds revisions back (default: it only reports it).
	Drift bool     `yaml:"drift" json:"drift,omitempty"`
	Pos   Position `yaml:"-" json:"-"`

	loc      *time.Location
	sched    cron.Schedule
	days     [7]bool
	from, to int // minutes of the day; from == to means the whole day
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Open reports whether the window is open at t.
func (w *Window) Open(t time.Time) bool {
	t = t.In(w.location())
	if w.sched != nil {
		// Open when the schedule fired within (t-Duration, t].
		return !w.sched.Next(t.Add(-w.Duration.D())).After(t)
	}
	m := t.Hour()*60 + t.Minute()
	wd := t.Weekday()
	switch {
	case w.from == w.to:
		return w.days[wd]
	case w.from < w.to:
		return w.days[wd] && m >= w.from && m < w.to
	default: // past midnight: the days name the day the window opens
		return w.days[wd] && m >= w.from || w.days[(wd+6)%7] && m < w.to
	}
}

// WindowVerdict is what an environment's windows say at one moment.
type WindowVerdict struct {
	// Open is true when revisions may go through.
	Open bool
	// Drift is true when the drift loop may correct drift (always when Open).
	Drift bool
	// Reason says which window holds revisions back ("" when Open).
	Reason string
	// Until is, while closed, the first moment revisions may go through
	// again: the holding window ends, or an allow window opens (zero when
	// that is not within a year).
	Until time.Time
}

// CheckWindows says whether revisions may go through at t: not while a
// deny window is open, and, when allow windows are declared, only while
// one of them is open. While held back, drift is corrected only when every
// window holding the revision back allows it, and Until says when the
// windows next let revisions through.
func CheckWindows(ws []Window, t time.Time) WindowVerdict {
	v := checkWindows(ws, t)
	if !v.Open {
		v.Until = nextOpen(ws, t)
	}
	return v
}

func checkWindows(ws []Window, t time.Time) WindowVerdict {
	var allows []*Window
	var denyOpen []*Window
	allowOpen := false
	for i := range ws {
		w := &ws[i]
		switch w.Kind {
		case "deny":
			if w.Open(t) {
				denyOpen = append(denyOpen, w)
			}
		default:
			allows = append(allows, w)
			allowOpen = allowOpen || w.Open(t)
		}
	}
	holding := denyOpen
	reason := ""
	switch {
	case len(denyOpen) > 0:
		reason = "deny window " + denyOpen[0].describe() + " is open"
	case len(allows) > 0 && !allowOpen:
		holding = allows
		reason = "outside every allow window (" + allows[0].describe() + ")"
	default:
		return WindowVerdict{Open: true, Drift: true}
	}
	drift := true
	for _, w := range holding {
		drift = drift && w.Drift
	}
	return WindowVerdict{Drift: drift, Reason: reason}
}

// Bounds of the search for the end of a closed period: weekday windows
// repeat every week; a schedule may fire once a year; a schedule firing
// very often is looked at for its first maxFires firings.
const (
	weekHorizon = 8 * 24 * time.Hour
	yearHorizon = 366 * 24 * time.Hour
	maxFires    = 2000
)

// nextOpen is the first moment after t when the windows let revisions
// through (zero when not within the horizon). Whether they do can only
// change where a window opens or closes, so only those moments are tried.
func nextOpen(ws []Window, t time.Time) time.Time {
	horizon := weekHorizon
	for i := range ws {
		if ws[i].sched != nil || ws[i].Schedule != "" {
			horizon = yearHorizon
		}
	}
	var edges []time.Time
	for i := range ws {
		edges = append(edges, ws[i].edges(t, t.Add(horizon))...)
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i].Before(edges[j]) })
	for _, e := range edges {
		if checkWindows(ws, e).Open {
			return e
		}
	}
	return time.Time{}
}

// edges returns the moments in (from, to] when the window may open or close.
func (w *Window) edges(from, to time.Time) []time.Time {
	loc := w.location()
	var out []time.Time
	add := func(e time.Time) {
		if e.After(from) && !e.After(to) {
			out = append(out, e)
		}
	}
	if w.sched != nil {
		d := w.Duration.D()
		f := w.sched.Next(from.In(loc).Add(-d))
		for i := 0; i < maxFires && !f.IsZero() && !f.After(to); i++ {
			add(f)
			add(f.Add(d))
			f = w.sched.Next(f)
		}
		return out
	}
	lf := from.In(loc)
	for day := -1; day <= int(to.Sub(from)/(24*time.Hour))+1; day++ {
		y, m, dd := lf.Date()
		for _, minute := range []int{w.from, w.to} {
			add(time.Date(y, m, dd+day, minute/60, minute%60, 0, 0, loc))
		}
	}
	return out
}

// location is the window's time zone (UTC when it cannot be loaded).
func (w *Window) location() *time.Location {
	if w.loc != nil {
		return w.loc
	}
	// A window decoded from JSON: its zone by name.
	if loc, err := time.LoadLocation(w.TimeZone); err == nil {
		return loc
	}
	return time.UTC
}

func (w *Window) describe() string {
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if w.Schedule != "" {
		return fmt.Sprintf("%q for %s %s", w.Schedule, w.Duration.D(), tz)
	}
	days := "every day"
	if len(w.Days) > 0 {
		days = strings.Join(w.Days, ",")
	}
	if w.Hours == "" {
		return days + " " + tz
	}
	return days + " " + w.Hours + " " + tz
}

// decodeWindows decodes and checks the `windows:` list.
func decodeWindows(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "windows: expected a list of windows, got %s", kindName(n))
		return
	}
	for _, item := range n.Content {
		if item = d.visit(item); item == nil {
			continue
		}
		w := Window{Pos: d.pos(item)}
		keys := d.decodeStruct(item, reflect.ValueOf(&w).Elem(), "a window", nil)
		if item.Kind != yaml.MappingNode {
			continue
		}
		at := func(k string) *yaml.Node {
			if v, ok := keys[k]; ok {
				return v
			}
			return item
		}
		if w.checkWindow(d, at) {
			env.Windows = append(env.Windows, w)
		}
	}
}

// checkWindow validates a window and fills its parsed fields; it reports
// whether the window is valid.
func (w *Window) checkWindow(d *decoder, at func(string) *yaml.Node) bool {
	n := len(d.errs.list)
	if w.Kind != "allow" && w.Kind != "deny" {
		d.errorf(at("kind"), "window kind: %q is not one of allow, deny", w.Kind)
	}
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil || strings.EqualFold(w.TimeZone, "local") {
		d.errorf(at("timezone"), "window timezone: %q is not an IANA time zone name", w.TimeZone)
		loc = time.UTC
	}
	w.loc = loc
	switch {
	case w.Schedule != "" && (len(w.Days) > 0 || w.Hours != ""):
		d.errorf(at("schedule"), "a window has either schedule and duration, or days and hours, not both")
	case w.Schedule != "":
		s, err := cron.ParseStandard(w.Schedule)
		if err != nil || strings.HasPrefix(w.Schedule, "TZ=") || strings.HasPrefix(w.Schedule, "CRON_TZ=") {
			d.errorf(at("schedule"), "window schedule: %q is not a cron expression (minute hour day-of-month month day-of-week; the zone goes in timezone)", w.Schedule)
		}
		w.sched = s
		if w.Duration <= 0 {
			d.errorf(at("duration"), "window duration: a schedule needs a positive duration")
		}
	case len(w.Days) == 0 && w.Hours == "":
		d.errorf(at("kind"), "a window needs days and/or hours, or a schedule and a duration")
	default:
		if w.Duration != 0 {
			d.errorf(at("duration"), "window duration: only a schedule takes a duration; hours give a window's length")
		}
		for _, day := range w.Days {
			wd, ok := weekdays[strings.ToLower(day)]
			if !ok {
				d.errorf(at("days"), "window days: %q is not one of mon, tue, wed, thu, fri, sat, sun", day)
				continue
			}
			w.days[wd] = true
		}
		if len(w.Days) == 0 {
			w.days = [7]bool{true, true, true, true, true, true, true}
		}
		if w.Hours != "" {
			from, to, ok := parseHours(w.Hours)
			if !ok {
				d.errorf(at("hours"), "window hours: %q is not HH:MM-HH:MM", w.Hours)
			}
			w.from, w.to = from, to
		}
	}
	return len(d.errs.list) == n
}

// parseHours parses "HH:MM-HH:MM" into minutes of the day; equal ends are
// refused (a whole day is written without hours).
func parseHours(s string) (from, to int, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	from, okA := parseClock(strings.TrimSpace(a))
	to, okB := parseClock(strings.TrimSpace(b))
	if to == 24*60 {
		to = 0
	}
	return from, to, okA && okB && from != to && from < 24*60
}

func parseClock(s string) (int, bool) {
	h, m, found := strings.Cut(s, ":")
	if !found || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return 0, false
	}
	return hh*60 + mm, true
}
