package targets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
)

// ObserveError is the failure to observe one resource; Observe joins one
// per failed resource, so callers can tell which resources are unknown.
type ObserveError struct {
	ID  string
	Err error
}

// Error says which resource could not be observed and why.
func (e *ObserveError) Error() string { return "observe " + e.ID + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ObserveError) Unwrap() error { return e.Err }

// Observe reads the live state of every resource in rs with one t.Run: the
// probes of all resources are concatenated into one script, each framed by
// markers carrying a random nonce (so that no file content can forge a
// marker), with its stderr captured apart.
//
// It returns the state of every resource it could observe. The error joins
// one *ObserveError per resource whose probe failed or whose output did not
// parse; an error reaching the host fails every resource.
func Observe(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource) (map[string]State, error) {
	return observe(ctx, t, drivers, rs, false)
}

// ObservePreview is Observe for a revision that is not trusted (a pull
// request, `driftless plan`): nothing the revision declares runs on the
// host. A kind whose query would run declared code (a command's unless
// guard) is asked without it, and the answer says what was left
// unevaluated.
func ObservePreview(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource) (map[string]State, error) {
	return observe(ctx, t, drivers, rs, true)
}

func observe(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource, preview bool) (map[string]State, error) {
	states := make(map[string]State, len(rs))
	if len(rs) == 0 {
		return states, nil
	}
	ds := make([]Driver, len(rs))
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		d, ok := drivers[r.Kind]
		if !ok {
			return nil, fmt.Errorf("observe %s: no driver for kind %q", r.ID(), r.Kind)
		}
		if seen[r.ID()] {
			return nil, fmt.Errorf("observe %s: declared twice", r.ID())
		}
		seen[r.ID()] = true
		ds[i] = d
	}
	var errs []error
	if n, ok := t.(NativeObserver); ok {
		done := make([]bool, len(rs))
		nerrs, err := observeNative(ctx, n, ds, rs, t.Root(), preview, states, done)
		if err != nil {
			return nil, err
		}
		errs = nerrs
		ds, rs = notDone(ds, done), notDone(rs, done)
		if len(rs) == 0 {
			return states, errors.Join(errs...)
		}
	}
	var probes []shellProbed
	var probed []config.Resource
	for i, r := range rs {
		p, ok := ds[i].(shellProbed)
		if !ok {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: notObserved(t, r)})
			continue
		}
		probes, probed = append(probes, p), append(probed, r)
	}
	if len(probed) == 0 {
		return states, errors.Join(errs...)
	}
	rs = probed
	nonce := "DRIFTLESS-" + randomHex(16)
	script := probeScript(nonce, probes, rs, t.Root())
	res, err := t.Run(ctx, script, nil)
	if err != nil {
		return nil, fmt.Errorf("observe %d resources: %w", len(rs), err)
	}
	out := res.Stdout
	for i, r := range rs {
		body, status, stderr, rest, ok := nextFrame(out, nonce, i)
		if !ok {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: fmt.Errorf(
				"no probe output (host script exited %d: %s)", res.Exit, trimOutput(res.Stderr))})
			continue
		}
		out = rest
		if status != 0 {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: fmt.Errorf(
				"probe exited %d: %s", status, trimOutput(stderr))})
			continue
		}
		st, err := drivers[r.Kind].Parse(r, body)
		if err != nil {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: err})
			continue
		}
		states[r.ID()] = st
	}
	return states, errors.Join(errs...)
}

// notDone keeps the elements of s not marked in done.
func notDone[T any](s []T, done []bool) []T {
	var out []T
	for i, v := range s {
		if !done[i] {
			out = append(out, v)
		}
	}
	return out
}

// notObserved says why r, of a kind observed only natively, was not:
// the transport does not observe natively, or the kind's query does not
// describe r.
func notObserved(t Transport, r config.Resource) error {
	if _, ok := t.(NativeObserver); !ok {
		return fmt.Errorf("kind %q is observed only natively, and this transport does not observe natively (only the driftless agent and the local transport do)", r.Kind)
	}
	return fmt.Errorf("kind %q cannot observe this resource natively", r.Kind)
}

// probeScript builds the one script that runs every probe. Each probe runs
// in a brace group (not a subshell: a fork per resource is the largest cost
// of observing a busy host) with stdin closed and its stderr in a temporary
// file that is sent back base64-encoded on the end marker's line:
//
//	NONCE B i
//	<probe output>
//	NONCE E i <exit status> <base64 of stderr>
func probeScript(nonce string, ds []shellProbed, rs []config.Resource, root string) string {
	var b strings.Builder
	b.WriteString("__dl_err=$(mktemp) || exit 111\ntrap 'rm -f \"$__dl_err\"' EXIT\n")
	for i, r := range rs {
		idx := strconv.Itoa(i)
		b.WriteString("echo '" + nonce + " B " + idx + "'\n{ :\n")
		b.WriteString(ds[i].Probe(r, root))
		b.WriteString("\n} </dev/null 2>\"$__dl_err\"\n__dl_s=$?\n")
		b.WriteString("printf '\\n%s %s ' '" + nonce + " E " + idx + "' \"$__dl_s\"\n")
		b.WriteString("if [ -s \"$__dl_err\" ]; then base64 -w0 \"$__dl_err\"; fi\necho\n")
	}
	return b.String()
}

// nextFrame cuts the frame of probe i from the start of out. It returns the
// probe's output, exit status and stderr, and what follows the frame.
func nextFrame(out []byte, nonce string, i int) (body []byte, status int, stderr, rest []byte, ok bool) {
	idx := strconv.Itoa(i)
	begin := []byte(nonce + " B " + idx + "\n")
	start := bytes.Index(out, begin)
	if start < 0 {
		return nil, 0, nil, nil, false
	}
	out = out[start+len(begin):]
	end := []byte("\n" + nonce + " E " + idx + " ")
	stop := bytes.Index(out, end)
	if stop < 0 {
		return nil, 0, nil, nil, false
	}
	body = out[:stop]
	out = out[stop+len(end):]
	line, rest, found := bytes.Cut(out, []byte("\n"))
	if !found {
		return nil, 0, nil, nil, false
	}
	statusText, errText, _ := bytes.Cut(line, []byte(" "))
	status, err := strconv.Atoi(string(statusText))
	if err != nil {
		return nil, 0, nil, nil, false
	}
	stderr, err = base64.StdEncoding.DecodeString(string(errText))
	if err != nil {
		stderr = errText
	}
	return body, status, stderr, rest, true
}

// PlanHost observes rs on t and diffs each against its declared state, in
// declared order. Resources that could not be observed are left out of the
// changes and named in the error (joined *ObserveError values); the others
// are still planned, so a caller can show what it knows.
func PlanHost(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource) ([]Change, error) {
	return planHost(ctx, t, drivers, rs, false)
}

// PlanPreview is PlanHost for a revision that is not trusted: it observes
// with ObservePreview, so nothing the revision declares runs on the host.
func PlanPreview(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource) ([]Change, error) {
	return planHost(ctx, t, drivers, rs, true)
}

func planHost(ctx context.Context, t Transport, drivers map[string]Driver, rs []config.Resource, preview bool) ([]Change, error) {
	states, err := observe(ctx, t, drivers, rs, preview)
	if states == nil {
		return nil, err
	}
	changes := make([]Change, 0, len(rs))
	for _, r := range rs {
		st, ok := states[r.ID()]
		if !ok {
			continue
		}
		c := drivers[r.Kind].Diff(r, st)
		c.ID, c.Kind, c.Before = r.ID(), r.Kind, st
		changes = append(changes, c)
	}
	return changes, err
}
