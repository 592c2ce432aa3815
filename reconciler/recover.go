package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// Recover brings every rollout that was interrupted (the daemon killed or
// crashed in the middle) to a consistent end by rolling it back: every
// recorded snapshot is restored, newest first, including the one of a
// resource whose apply may not have started, since restoring an untouched
// resource changes nothing. See DESIGN.md, "Decisions". Run calls it
// before anything else; an environment whose recovery fails stays blocked
// and is retried before each of its runs.
func (r *Reconciler) Recover(ctx context.Context) error {
	envs, err := r.store.Journals()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range envs {
		if err := r.call(ctx, name, request{kind: reqRecover}).err; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recoverEnv rolls back the environment's open journal, if any; it is
// the first step of every pass of the environment's worker.
//
// A journal is open in two cases, told apart by the rollout's own run in
// history: a rollback that could not finish (a host went away; the run is
// recorded as rolled back, and the environment is blocked until this
// finishes), or a rollout whose daemon stopped in the middle (no run, or a
// run ended by the shutdown). The record says which, and a rollout is
// counted once.
func (r *Reconciler) recoverEnv(ctx context.Context, st *envState) error {
	name, state := st.rec.Name, st.rec.State
	j, entries, err := r.store.OpenJournal(name)
	if err != nil {
		return err
	}
	st.journalOpen = j != nil
	if j == nil {
		return nil
	}
	start := r.now()
	log := r.log.With().Str("environment", name).Str("revision", j.Revision.Short()).Logger()
	prior := r.journalRun(name, j)
	unfinished := prior != nil && prior.Result == status.ResultRolledBack
	if unfinished {
		log.Info().Int("resources", len(entries)).Msg("finishing an unfinished rollback")
	} else {
		log.Warn().Int("resources", len(entries)).Msg("interrupted rollout found; rolling it back")
	}
	if state != status.StateBlocked {
		// A blocked environment stays blocked while it retries, so that
		// its state and gauge change only when the rollback ends.
		r.update(st, func(rec *store.EnvRecord) { rec.State = status.StateRollingBack })
	}
	byHost := map[string][]store.JournalEntry{}
	for _, e := range entries {
		byHost[e.Host] = append(byHost[e.Host], e)
	}
	var errs []error
	for i := len(j.Hosts) - 1; i >= 0; i-- {
		h := j.Hosts[i]
		mine := byHost[h.Name]
		if len(mine) == 0 {
			continue
		}
		if err := r.recoverHost(ctx, name, &h, mine, log.With().Str("host", h.Name).Logger()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		msg := fmt.Sprintf("rollback of %s unfinished; retried at every pass: %v", j.Revision.Short(), err)
		r.update(st, func(rec *store.EnvRecord) { rec.State, rec.LastError = status.StateBlocked, msg })
		if r.noticeDue(st, noticeBlocked, j.Revision.Commit) {
			r.report(status.Report{Environment: name, Source: j.Revision.Source, Commit: j.Revision.Commit, Status: status.StatusFailure,
				Description: "blocked: " + msg})
		}
		return fmt.Errorf("recover rollout of %s: %w", name, err)
	}
	if err := r.store.EndJournal(name); err != nil {
		return err
	}
	st.journalOpen = false
	r.noticeDue(st, noticeBlocked, "")
	run, desc := recoveryRun(name, j, prior, len(entries), start, r.now())
	r.finish(ctx, st, &outcome{kind: outRecovery, tg: target{rev: j.Revision}, run: &run, prior: prior, desc: desc})
	return nil
}

// recoveryRun is the run a finished recovery records: the rollout's own
// run when history has it, or a new one when it was never recorded (the
// daemon died, or the rollout's end could not be written); desc says what happened in one line.
func recoveryRun(name string, j *store.Journal, prior *store.Run, entries int, start, end time.Time) (run store.Run, desc string) {
	if prior == nil {
		desc = "this rollout's end was never recorded (its daemon was stopped or killed, lost the environment, or could not write it to its store); it was rolled back at the next pass"
		return store.Run{Environment: name, Revision: j.Revision, Trigger: status.TriggerRecovery, Start: start, End: end,
			Result: status.ResultRolledBack, Changes: entries, Error: desc}, desc
	}
	run = *prior
	if prior.Result == status.ResultRolledBack {
		desc = fmt.Sprintf("rollback of %s finished at %s, once every host it touched could be reached again", j.Revision.Short(), end.UTC().Format(time.RFC3339))
	} else {
		// Interrupted (a shutdown, a lost ownership, a store error: the
		// run's own error says which): recorded as failed, rolled back now.
		desc = fmt.Sprintf("this rollout was interrupted; it was rolled back at the next pass (%s)", end.UTC().Format(time.RFC3339))
		run.Result = status.ResultRolledBack
	}
	run.Error = strings.TrimPrefix(run.Error+"; "+desc, "; ")
	return run, desc
}

// journalRun returns the run of the rollout that opened j, when history
// recorded it (it ended after the journal began), else nil.
func (r *Reconciler) journalRun(name string, j *store.Journal) *store.Run {
	runs, err := r.store.History(name, 20)
	if err != nil {
		r.log.Error().Err(err).Str("environment", name).Msg("cannot read history")
		return nil
	}
	for _, run := range runs {
		if run.Revision.Commit == j.Revision.Commit && run.Trigger != status.TriggerRecovery && !run.End.Before(j.Started) {
			return &run
		}
	}
	return nil
}

// recoverHost reaches one host of an interrupted rollout, removes the
// temporary files an interrupted atomic write may have left beside the
// journal's paths, and restores the host's snapshots.
func (r *Reconciler) recoverHost(ctx context.Context, env string, h *config.Host, entries []store.JournalEntry, log zerolog.Logger) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.opts.HostTimeout)
	defer cancel()
	// The first command says whether the host can be reached (a transport
	// may connect lazily); one cut short by a shutdown says nothing.
	reached := func(err error) {
		if parent.Err() == nil {
			r.setHostUp(env, h.Name, err == nil)
		}
	}
	t, err := r.opts.Dialer.Transport(ctx, h)
	if err != nil {
		reached(err)
		return fmt.Errorf("connect to %s: %w", h.Name, err)
	}
	defer t.Close()
	ctx, end, err := r.fenceHost(ctx, t, env, hostOpRecover)
	if err != nil {
		return err
	}
	defer end()
	script := tempCleanup(t.Root(), entries)
	if script == "" {
		script = "true"
	}
	res, err := t.Run(ctx, script, nil)
	reached(err)
	if err != nil {
		return fmt.Errorf("reach %s: %w", h.Name, err)
	}
	if res.Exit != 0 {
		log.Warn().Int("exit", res.Exit).Msg("cannot remove temporary files of interrupted writes")
	}
	lookup := func(id string) (config.Resource, bool) {
		for _, e := range entries {
			if e.Resource.ID() == id {
				return e.Resource, true
			}
		}
		return config.Resource{}, false
	}
	// The host's resources are not in the journal; the refresh after the
	// restore walks the restored resources in journal order instead.
	hh := *h
	for _, e := range entries {
		hh.Resources = append(hh.Resources, e.Resource)
	}
	return r.restoreEntries(ctx, t, &hh, entries, lookup, log)
}

// tempCleanup returns a script removing the temporary files of
// targets' atomic writes (".<name>.driftless-*" beside each path) that a
// killed daemon left behind.
func tempCleanup(root string, entries []store.JournalEntry) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, e := range entries {
		p := e.Resource.Name
		if !strings.HasPrefix(p, "/") || seen[p] {
			continue
		}
		seen[p] = true
		dir, base := path.Split(path.Clean(p))
		b.WriteString("for f in " + targets.ShellQuote(root+dir) + "/" + targets.ShellQuote("."+base+".driftless-") + "*; do " +
			"if [ -f \"$f\" ]; then rm -f -- \"$f\"; fi; done\n")
	}
	return b.String()
}
