package reconciler

import (
	"fmt"
	"strings"
	"time"
)

// finish records a run: history, metrics, the environment's record and
// in-memory state, and the final report. rollout defers it, so it runs on
// every exit path. cut says that the daemon stopped while the run was
// still planning: nothing changed on any host, so the environment keeps
// its state (and the applied revision its soak) across the restart.
func (r *Reconciler) finish(st *envState, tg target, run *Run, cut bool) {
	run.End = r.now()
	if run.Result == "" {
		run.Result, run.Error = ResultFailed, strings.TrimPrefix(run.Error+"; run ended without a result", "; ")
	}
	name := tg.env.Name
	log := r.log.With().Str("environment", name).Str("revision", tg.rev.Short()).Logger()
	if id, err := r.store.AddRun(*run); err != nil {
		log.Error().Err(err).Msg("cannot record run in history")
	} else {
		run.ID = id
	}
	r.m.reconcileTotal.WithLabelValues(name, run.Result).Inc()
	r.m.duration.WithLabelValues(name).Observe(run.End.Sub(run.Start).Seconds())

	blocked := false
	if run.Result == ResultRolledBack {
		// A rollback that could not restore every host leaves its journal
		// open: the environment is blocked until it finishes.
		j, _, err := r.store.OpenJournal(name)
		blocked = err == nil && j != nil
	}
	backoff := r.retryBackoff(st)
	r.mu.Lock()
	switch {
	case cut:
	case run.Result == ResultFailed:
		// Transient: tried again after a backoff that grows with each
		// failure in a row.
		st.retries++
		st.retryAt = run.End.Add(backoff.Delay(st.retries))
	default:
		// Done, or stalled (rolled back: quarantined until a new revision).
		st.retries, st.retryAt = 0, time.Time{}
	}
	prevCommit := st.rec.Applied.Commit
	if run.Result == ResultSuccess || run.Result == ResultNoop {
		st.applied = tg.env
	}
	r.mu.Unlock()
	r.update(st, func(rec *EnvRecord) {
		rec.LastResult, rec.LastRun, rec.LastError, rec.LastErrorClass = run.Result, run.End, run.Error, run.ErrorClass
		if cut {
			return
		}
		switch run.Result {
		case ResultSuccess, ResultNoop:
			if rec.Applied.Commit != tg.rev.Commit || rec.CleanSince.IsZero() {
				rec.CleanSince = run.End
			}
			rec.Applied, rec.LastGood, rec.State = tg.rev, tg.rev, StateSynced
		case ResultRolledBack:
			rec.State, rec.CleanSince = StateRolledBack, time.Time{}
			if blocked {
				rec.State = StateBlocked
			}
		default:
			rec.State, rec.CleanSince = StateFailed, time.Time{}
		}
	})
	r.wakeOthers(name)
	ev := log.Info()
	if run.Result == ResultFailed || run.Result == ResultRolledBack {
		ev = log.Error()
	}
	ev.Str("result", run.Result).Str("trigger", run.Trigger).Int("changes", run.Changes).
		Dur("duration_ms", run.End.Sub(run.Start)).Str("err", run.Error).Msg("reconcile finished")

	rep := Report{Environment: name, Source: tg.rev.Source, Commit: tg.rev.Commit, Time: run.End, Decision: run.Decision, Tests: run.Tests}
	// A failing environment is reported when it starts failing (or fails
	// differently: another commit, other hosts), then at the reminder
	// interval, and when it stops failing.
	wasFailing := false
	if run.Result == ResultFailed {
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
	case ResultSuccess:
		r.m.lastApplied.WithLabelValues(name).Set(float64(run.End.Unix()))
		rep.Status, rep.Description = StatusSuccess, fmt.Sprintf("applied %d change(s)", run.Changes)
	case ResultNoop:
		r.m.lastApplied.WithLabelValues(name).Set(float64(run.End.Unix()))
		if prevCommit == tg.rev.Commit && !wasFailing {
			// The same revision again (a sync, a restart): nothing new to say.
			return
		}
		rep.Status, rep.Description = StatusSuccess, "no changes needed"
	case ResultRolledBack:
		rep.Status, rep.Description = StatusRolledBack, "rolled back: "+run.Error
	default:
		rep.Status, rep.Description = StatusFailure, "failed: "+run.Error
	}
	if run.Tests != nil {
		rep.Description += "; tests: " + run.Tests.String()
	}
	r.report(rep)
}
