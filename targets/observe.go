package targets

import (
	"context"
	"errors"
	"fmt"

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

// Observe reads the live state of every resource in rs in one native
// observation (NativeObserver): the agent on the host, or the local
// transport in the daemon's process. Each kind describes its resources as
// queries (never declared content or a command) and reads the answers
// with its own Parse.
//
// It returns the state of every resource it could observe. The error joins
// one *ObserveError per resource its kind refused (an invalid one), whose
// observation failed on the host or whose answer did not parse; a
// transport that does not observe natively, or an error reaching the
// host, fails every resource.
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
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		if _, ok := drivers[r.Kind]; !ok {
			return nil, fmt.Errorf("observe %s: no driver for kind %q", r.ID(), r.Kind)
		}
		if seen[r.ID()] {
			return nil, fmt.Errorf("observe %s: declared twice", r.ID())
		}
		seen[r.ID()] = true
	}
	n, ok := t.(NativeObserver)
	if !ok {
		return nil, fmt.Errorf("observe %d resources: the transport does not observe natively (only the driftless agent and the local transport do)", len(rs))
	}
	var qs []Query
	var asked []config.Resource
	var errs []error
	for _, r := range rs {
		q, err := nativeQuery(r, t.Root(), preview)
		if err != nil {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: err})
			continue
		}
		qs, asked = append(qs, q), append(asked, r)
	}
	if len(qs) == 0 {
		return states, errors.Join(errs...)
	}
	answers, err := n.ObserveNative(ctx, qs)
	if err != nil {
		return nil, fmt.Errorf("observe %d resources: %w", len(qs), err)
	}
	if len(answers) != len(qs) {
		return nil, fmt.Errorf("observe %d resources: %d answers", len(qs), len(answers))
	}
	for i, a := range answers {
		r := asked[i]
		if a.Err != "" {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: errors.New(trimOutput([]byte(a.Err)))})
			continue
		}
		st, err := drivers[r.Kind].Parse(r, a.Out)
		if err != nil {
			errs = append(errs, &ObserveError{ID: r.ID(), Err: err})
			continue
		}
		states[r.ID()] = st
	}
	return states, errors.Join(errs...)
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
