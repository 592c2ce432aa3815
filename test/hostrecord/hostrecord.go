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

// Check returns an error when the record shows a replica beginning to
// write while another replica's writes were open, a token lower than one
// written before, or an end without its begin. dead says when a replica
// was known to have stopped (killed and reaped): the writes it left open
// end there.
func Check(events []Event, dead map[string]time.Time) error {
	open := map[string]Event{}
	var top int64
	for _, e := range events {
		if !e.Begin {
			b, ok := open[e.Replica]
			if !ok || b.Token != e.Token {
				return fmt.Errorf("%v has no begin", e)
			}
			delete(open, e.Replica)
			continue
		}
		if e.Token < top {
			return fmt.Errorf("%v: the token went down (a write with token %d came before)", e, top)
		}
		top = e.Token
		for r, o := range open {
			if d, ok := dead[r]; ok && d.Before(e.Time) {
				delete(open, r)
				continue
			}
			return fmt.Errorf("two replicas wrote at once: %v while the %v was still open", e, o)
		}
		open[e.Replica] = e
	}
	return nil
}
