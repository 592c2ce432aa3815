package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/driftless/driftless/reconciler/status"
)

// The values of --progress.
const (
	progressAuto  = "auto"
	progressLive  = "live"
	progressPlain = "plain"
	progressNone  = "none"
)

func progressFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "progress", progressAuto, "how progress is shown on stderr: auto (live on a terminal, else plain), live, plain (one line per event), none")
}

// progressView shows progress events as they come, on stderr: a live
// table with one row per host on a terminal, one plain line per event
// otherwise. It is safe for concurrent use.
type progressView struct {
	mu   sync.Mutex
	w    io.Writer
	live bool
	none bool
	// The live table: one row per environment and host, in the order
	// they first appeared, each showing the host's newest event.
	keys  []string
	rows  map[string]string
	drawn int
	// width and height are the terminal's size: a row is cut to the
	// width, and a table taller than the screen, whose top could not be
	// reached again, gives way to plain lines.
	width, height int
}

// newProgressView returns the view of mode (one of the --progress values;
// anything else is a usage error) writing to w; terminal says whether w
// is one.
func newProgressView(w io.Writer, mode string, terminal bool) (*progressView, error) {
	v := &progressView{w: w, rows: map[string]string{}, width: 80, height: 24}
	switch mode {
	case progressAuto:
		v.live = terminal
	case progressLive:
		v.live = true
	case progressPlain:
	case progressNone:
		v.none = true
	default:
		return nil, usageError{fmt.Errorf("--progress must be auto, live, plain or none, got %q", mode)}
	}
	if f, ok := w.(*os.File); ok && v.live {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 && ws.Row > 0 {
			v.width, v.height = int(ws.Col), int(ws.Row)
		}
	}
	return v, nil
}

// show displays events, in order; it is a reconciler.Progress.
func (v *progressView) show(events ...status.Event) {
	if v.none || len(events) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range events {
		if !v.live {
			fmt.Fprintln(v.w, progressLine(e))
			continue
		}
		key := e.Environment + " " + e.Host
		if _, ok := v.rows[key]; !ok {
			if len(v.keys)+1 >= v.height {
				// Below the table drawn so far, plain lines from here on.
				v.redraw()
				v.live = false
				fmt.Fprintln(v.w, progressLine(e))
				continue
			}
			v.keys = append(v.keys, key)
		}
		v.rows[key] = progressLine(e)
	}
	if v.live {
		v.redraw()
	}
}

// redraw writes the table over the one drawn before: the cursor goes
// back up to its first row and each row is cleared and written again,
// cut to the terminal's width so that no row wraps onto two lines.
func (v *progressView) redraw() {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, k := range v.keys {
		row := v.rows[k]
		if r := []rune(row); len(r) > v.width-1 {
			row = string(r[:v.width-1])
		}
		b.WriteString("\x1b[2K" + row + "\n")
	}
	v.drawn = len(v.keys)
	_, _ = io.WriteString(v.w, b.String())
}

// progressLine is an event as one line of stable text: the environment,
// the batch when there is one, the host, and what happens.
func progressLine(e status.Event) string {
	where := e.Environment
	if e.Batch > 0 {
		where += fmt.Sprintf(" batch %d/%d", e.Batch, e.Batches)
	}
	return where + " " + e.Host + ": " + progressWhat(e)
}

// progressWhat says what an event is about.
func progressWhat(e status.Event) string {
	if e.Check != "" {
		s := fmt.Sprintf("check %q attempt %d/%d %s", e.Check, e.Attempt, e.Attempts, e.Status)
		if e.Status == status.StatusRetrying {
			s = fmt.Sprintf("check %q attempt %d/%d failed, retrying", e.Check, e.Attempt, e.Attempts)
		}
		return s
	}
	n := e.Count
	switch e.Status {
	case status.StatusStarted:
		switch e.Step {
		case status.StepObserve:
			return "observe"
		case status.StepSnapshot:
			return "snapshot " + count(n, "resource")
		case status.StepApply:
			return "apply " + count(n, "change")
		case status.StepVerify:
			return "verify " + count(n, "check")
		case status.StepRollback:
			return "roll back " + count(n, "resource")
		}
	case status.StatusOK:
		switch e.Step {
		case status.StepObserve:
			return "observed, " + count(n, "change")
		case status.StepApply:
			return "applied " + count(n, "change")
		case status.StepDone:
			return "done"
		}
	case status.StatusFailed:
		if e.Step == status.StepDone {
			return "failed"
		}
	}
	return string(e.Step) + " " + e.Status
}

// count is "1 change", "2 changes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// followInterval is how often a client following a run asks for its
// progress.
const followInterval = 200 * time.Millisecond

// follow wraps op, a request that answers once an environment's run
// ended, so that the run's progress is shown while it waits: the progress
// endpoint is read once before op starts (to skip older events), then
// every followInterval, and once more after op answered. When the daemon
// cannot tell the progress (an older daemon), op runs all the same and,
// when it succeeded, a note says why no progress was shown.
func (c *apiClient) follow(ctx context.Context, env *cliEnv, name string, view *progressView, op func() ([]byte, error)) func() ([]byte, error) {
	return func() ([]byte, error) {
		var ans struct {
			Events []status.Event `json:"events"`
			Next   uint64         `json:"next"`
		}
		path := envPath(name) + "/progress?after="
		if _, perr := c.do(ctx, http.MethodGet, path+"0", nil, &ans); perr != nil {
			raw, err := op()
			if err == nil {
				fmt.Fprintf(env.stderr, "driftless: no progress to show: %v\n", perr)
			}
			return raw, err
		}
		after := ans.Next
		poll := func() {
			ans.Events = nil
			if _, err := c.do(ctx, http.MethodGet, path+strconv.FormatUint(after, 10), nil, &ans); err == nil {
				view.show(ans.Events...)
				after = ans.Next
			}
		}
		var raw []byte
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			raw, err = op()
		}()
		tick := time.NewTicker(followInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				poll()
				return raw, err
			case <-tick.C:
				poll()
			}
		}
	}
}
