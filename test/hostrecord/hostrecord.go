// Package hostrecord reads the record of the replicas' writes that each
// host keeps in cluster mode (/var/lib/driftless/fence/ENV.log, written by
// the reconciler's host fence) and checks it: no two replicas ever wrote
// the host at once, and the fencing tokens they wrote with never went
// down.
package hostrecord

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one line of the record: a replica began or ended a run of
// writes on the host, owning the environment with Token.
type Event struct {
	Begin   bool
	Time    time.Time
	Token   int64
	Op      string
	Replica string
}

func (e Event) String() string {
	what := "end"
	if e.Begin {
		what = "begin"
	}
	return fmt.Sprintf("%s of %s by %s (token %d) at %s", what, e.Op, e.Replica, e.Token, e.Time.Format("15:04:05.000000"))
}

// Parse reads a record, in the order it was written.
func Parse(data []byte) ([]Event, error) {
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.SplitN(sc.Text(), " ", 5)
		if len(f) != 5 || (f[0] != "begin" && f[0] != "end") {
			return nil, fmt.Errorf("line %d: %q is not an event", n, sc.Text())
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: time: %w", n, err)
		}
		tok, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: token: %w", n, err)
		}
		replica, err := strconv.Unquote(f[4])
		if err != nil {
			return nil, fmt.Errorf("line %d: replica %s: %w", n, f[4], err)
		}
		out = append(out, Event{Begin: f[0] == "begin", Time: time.Unix(0, ns), Token: tok, Op: f[3], Replica: replica})
	}
	return out, sc.Err()
}

// Span is a time a replica was known not to run: from its kill (and
// reaping) on, when To is zero, or stopped (SIGSTOP) from From to To
// (SIGCONT).
type Span struct{ From, To time.Time }

// Away says, per replica, when it was known not to run.
type Away map[string][]Span

// at tells whether replica was away at t, and whether for good (killed).
func (a Away) at(replica string, t time.Time) (away, killed bool) {
	for _, s := range a[replica] {
		if s.From.Before(t) && (s.To.IsZero() || t.Before(s.To)) {
			return true, s.To.IsZero()
		}
	}
	return false, false
}

// Check returns an error when the record shows a replica beginning to
// write while another replica's writes were open, a token lower than one
// written before, or an end without its begin. away says when replicas
// were known not to run: the writes a killed replica left open end when
// it died; those of a replica stopped when another began with a higher
// token are superseded then (the host refuses the stopped one's token
// from that begin on). The stopped replica, once it runs again, must
// close them (its late end) before anything else happens on the host,
// and while no other replica's writes are open: its pending write was
// refused, and it wrote nothing after.
func Check(events []Event, away Away) error {
	open := map[string]Event{}
	superseded := map[string]Event{}
	var top int64
	for _, e := range events {
		for r, s := range superseded {
			if gone, _ := away.at(r, e.Time); r != e.Replica && !gone {
				return fmt.Errorf("%v came after %s ran again and before it closed its superseded %v", e, r, s)
			}
		}
		if !e.Begin {
			if b, ok := open[e.Replica]; ok && b.Token == e.Token {
				delete(open, e.Replica)
				continue
			}
			if b, ok := superseded[e.Replica]; ok && b.Token == e.Token {
				for r, o := range open {
					if r != e.Replica {
						return fmt.Errorf("%v, closing a superseded %v, came while the %v was open", e, b, o)
					}
				}
				delete(superseded, e.Replica)
				continue
			}
			return fmt.Errorf("%v has no begin", e)
		}
		if e.Token < top {
			return fmt.Errorf("%v: the token went down (a write with token %d came before)", e, top)
		}
		top = e.Token
		for r, o := range open {
			gone, killed := away.at(r, e.Time)
			switch {
			case gone && killed:
				delete(open, r)
			case gone && o.Token < e.Token:
				delete(open, r)
				superseded[r] = o
			default:
				return fmt.Errorf("two replicas wrote at once: %v while the %v was still open", e, o)
			}
		}
		open[e.Replica] = e
	}
	return nil
}
