package reconciler

import (
	"context"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
)

// emit sends an event about host hr to Options.Progress, when set.
func (r *Reconciler) emit(env string, hr *hostRun, step status.Step, st string, count int) {
	if r.opts.Progress == nil {
		return
	}
	r.opts.Progress(hr.event(env, step, st, count))
}

// statusOf is StatusOK or StatusFailed.
func statusOf(ok bool) string {
	if ok {
		return status.StatusOK
	}
	return status.StatusFailed
}

// event is an event about hr, placed in its batch.
func (hr *hostRun) event(env string, step status.Step, st string, count int) status.Event {
	return status.Event{Environment: env, Batch: hr.batch, Batches: hr.batches,
		Host: hr.host.Name, Step: step, Status: st, Count: count}
}

// withAttempts makes the checks run under ctx report each attempt as a
// verify event about hr (see verify.WithAttempts).
func (r *Reconciler) withAttempts(ctx context.Context, env string, hr *hostRun) context.Context {
	if r.opts.Progress == nil {
		return ctx
	}
	return verify.WithAttempts(ctx, func(a verify.Attempt) {
		e := hr.event(env, status.StepVerify, status.StatusOK, 0)
		switch {
		case !a.OK && a.N < a.Of:
			e.Status = status.StatusRetrying
		case !a.OK:
			e.Status = status.StatusFailed
		}
		e.Check, e.Attempt, e.Attempts = a.Check, a.N, a.Of
		r.opts.Progress(e)
	})
}
