package reconciler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// outcomeKind is the kind of run finish records.
type outcomeKind int

const (
	// outRollout is a rollout (of a revision, a sync, a retry, a rollback).
	outRollout outcomeKind = iota
	// outDrift is a drift pass over the applied revision.
	outDrift
	// outRecovery is the end of a rollback that had to wait: an
	// interrupted rollout, or a rollback that could not reach a host.
	outRecovery
	// outRejected is the rejection of a revision held at the gates.
	outRejected
)

// outcome is what finish records about one run.
type outcome struct {
	kind outcomeKind
	tg   target
	run  *store.Run
	// cut (a rollout) says that the daemon stopped while the run was still
	// planning: nothing changed on any host, so the environment keeps its
	// state (and the applied revision its soak) across the restart.
	cut bool
	// stored (a rollout) says that finish writes neither the run nor the
	// record: the journal's completion wrote both, or failed, leaving the
	// store as it was (the journal open, for the recovery).
	stored bool
	// clean (a drift pass) says that no drift is left open.
	clean bool
	// prior (a recovery) is the rollout's own run when history has it;
	// desc says in one line what the recovery did.
	prior *store.Run
	desc  string
}

// finish records a run, whatever its kind and outcome (success, no-op,
// failed, rolled back, rejected, cut short): history, metrics, the
// environment's record and in-memory state, and the report. rollout and
// drift defer it, so it runs on every exit path; a recovery and a
// rejection call it once they are done. Only the environment's worker
// calls it.
func (r *Reconciler) finish(ctx context.Context, st *envState, o *outcome) {
	run := o.run
	if run.End.IsZero() {
		run.End = r.now()
	}
	if run.Result == "" {
		run.Result, run.Error = status.ResultFailed, strings.TrimPrefix(run.Error+"; run ended without a result", "; ")
	}
	name := st.name()
	log := r.log.With().Str("environment", name).Str("revision", run.Revision.Short()).Logger()
	switch o.kind {
	case outRollout:
		if !o.stored {
			r.addRun(run, log)
		}
		r.m.reconcileTotal.WithLabelValues(name, run.Result).Inc()
		r.m.duration.WithLabelValues(name).Observe(run.End.Sub(run.Start).Seconds())
		r.finishRollout(st, o, log)
	case outDrift:
		r.m.reconcileTotal.WithLabelValues(name, run.Result).Inc()
		r.m.duration.WithLabelValues(name).Observe(run.End.Sub(run.Start).Seconds())
		// Quiet passes are counted but not written to history, so the
		// history keeps the runs that did something.
		if run.Result != status.ResultNoop || run.Trigger != status.TriggerDrift {
			r.addRun(run, log)
		}
		r.markClean(ctx, st, name, *run, o.clean)
	case outRecovery:
		r.finishRecovery(st, o, log)
	case outRejected:
		r.addRun(run, log)
		d := run.Decision
		r.report(status.Report{Environment: name, Source: run.Revision.Source, Commit: d.Commit, Status: status.StatusFailure,
			Gate: status.StateRejected, Decision: d, Description: "rejected by " + d.By})
	}
}

// addRun writes a run to history and gives it its id.
func (r *Reconciler) addRun(run *store.Run, log zerolog.Logger) {
	if id, err := r.store.AddRun(*run); err != nil {
		log.Error().Err(err).Msg("cannot record run in history")
	} else {
		run.ID = id
	}
}

// finishRollout records a rollout's end in the environment's record and
// state (its retries among them), and reports it.
func (r *Reconciler) finishRollout(st *envState, o *outcome, log zerolog.Logger) {
	run, tg, cut, name := o.run, o.tg, o.cut, st.name()
	blocked := false
	if run.Result == status.ResultRolledBack {
		// A rollback that could not restore every host leaves its journal
		// open: the environment is blocked until it finishes.
		j, _, err := r.store.OpenJournal(name)
		blocked = err == nil && j != nil
	}
	backoff := r.retryBackoff(st)
	switch {
	case cut:
	case run.Result == status.ResultFailed:
		// Transient: tried again after a backoff that grows with each
		// failure in a row.
		st.retries++
		st.retryAt = run.End.Add(backoff.Delay(st.retries))
	default:
		// Done, or stalled (rolled back: quarantined until a new revision).
		st.retries, st.retryAt = 0, time.Time{}
	}
	prevCommit := st.rec.Applied.Commit
	if run.Result == status.ResultSuccess || run.Result == status.ResultNoop {
		st.applied = tg.env
	}
	write := r.update
	if o.stored {
		write = r.change
	}
	write(st, func(rec *store.EnvRecord) { endRecord(rec, *run, tg.rev, cut, blocked) })
	r.wakeOthers(name)
	ev := log.Info()
	if run.Result == status.ResultFailed || run.Result == status.ResultRolledBack {
		ev = log.Error()
	}
	ev.Str("result", run.Result).Str("trigger", run.Trigger).Int("changes", run.Changes).
		Dur("duration_ms", run.End.Sub(run.Start)).Str("err", run.Error).Msg("reconcile finished")

	rep := status.Report{Environment: name, Source: tg.rev.Source, Commit: tg.rev.Commit, Time: run.End, Decision: run.Decision, Tests: run.Tests}
	// A failing environment is reported when it starts failing (or fails
	// differently: another commit, other hosts), then at the reminder
	// interval, and when it stops failing.
	wasFailing := false
	if run.Result == status.ResultFailed {
		if !r.noticeDue(st, noticeFailure, tg.rev.Commit+" "+strings.Join(run.FailedHosts, ",")) {
			return
		}
	} else {
		wasFailing = r.noticeDue(st, noticeFailure, "")
	}
	if blocked {
		// The rollback report says it could not finish; the passes that
		// retry it say nothing new until it ends.
		r.noticeDue(st, noticeBlocked, tg.rev.Commit)
	}
	switch run.Result {
	case status.ResultSuccess:
		r.m.lastApplied.WithLabelValues(name).Set(float64(run.End.Unix()))
		rep.Status, rep.Description = status.StatusSuccess, fmt.Sprintf("applied %d change(s)", run.Changes)
	case status.ResultNoop:
		r.m.lastApplied.WithLabelValues(name).Set(float64(run.End.Unix()))
		if prevCommit == tg.rev.Commit && !wasFailing {
			// The same revision again (a sync, a restart): nothing new to say.
			return
		}
		rep.Status, rep.Description = status.StatusSuccess, "no changes needed"
	case status.ResultRolledBack:
		rep.Status, rep.Description = status.StatusRolledBack, "rolled back: "+run.Error
	default:
		rep.Status, rep.Description = status.StatusFailure, "failed: "+run.Error
	}
	if run.Tests != nil {
		rep.Description += "; tests: " + run.Tests.String()
	}
	r.report(rep)
}

// endRecord is what a rollout's end changes in the environment's record:
// cut and blocked are the outcome's (the daemon stopped while planning; a
// rollback left its journal open).
func endRecord(rec *store.EnvRecord, run store.Run, rev sources.Revision, cut, blocked bool) {
	rec.LastResult, rec.LastRun, rec.LastError, rec.LastErrorClass = run.Result, run.End, run.Error, run.ErrorClass
	if cut {
		return
	}
	switch run.Result {
	case status.ResultSuccess, status.ResultNoop:
		if rec.Applied.Commit != rev.Commit || rec.CleanSince.IsZero() {
			rec.CleanSince = run.End
		}
		rec.Applied, rec.LastGood, rec.State = rev, rev, status.StateSynced
	case status.ResultRolledBack:
		rec.State, rec.CleanSince = status.StateRolledBack, time.Time{}
		if blocked {
			rec.State = status.StateBlocked
		}
	default:
		rec.State, rec.CleanSince = status.StateFailed, time.Time{}
	}
}

// finishRecovery records the end of a rollback that had to wait: into the
// rollout's own run when history has it (counted then already), or as a
// new run (counted now) when it was never recorded (the daemon died, or
// the rollout's end could not be written); then
// the environment's record and the report.
func (r *Reconciler) finishRecovery(st *envState, o *outcome, log zerolog.Logger) {
	run, name := o.run, st.name()
	if o.prior == nil {
		r.addRun(run, log)
		r.m.reconcileTotal.WithLabelValues(name, status.ResultRolledBack).Inc()
		r.m.rollbacks.WithLabelValues(name, "interrupted").Inc()
	} else {
		if o.prior.Result != status.ResultRolledBack {
			r.m.rollbacks.WithLabelValues(name, "interrupted").Inc()
		}
		if ok, err := r.store.UpdateRun(*run); err != nil || !ok {
			log.Error().Err(err).Bool("found", ok).Msg("cannot record the end of the rollback in history")
		}
	}
	r.update(st, func(rec *store.EnvRecord) {
		rec.State, rec.LastResult, rec.LastError, rec.LastRun = status.StateRolledBack, run.Result, run.Error, run.End
	})
	r.report(status.Report{Environment: name, Source: run.Revision.Source, Commit: run.Revision.Commit, Status: status.StatusRolledBack,
		Description: o.desc, Time: r.now()})
	log.Warn().Str("result", run.Result).Msg(o.desc)
}
