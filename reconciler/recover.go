package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
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
		st := r.state(name)
		st.op.Lock()
		err := r.recoverEnv(ctx, st)
		st.op.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recoverEnv rolls back the environment's open journal, if any. The caller
// holds st.op.
func (r *Reconciler) recoverEnv(ctx context.Context, st *envState) error {
	r.mu.Lock()
	name := st.rec.Name
	r.mu.Unlock()
	j, entries, err := r.store.OpenJournal(name)
	if err != nil || j == nil {
		return err
	}
	start := r.now()
	log := r.log.With().Str("environment", name).Str("revision", j.Revision.Short()).Logger()
	log.Warn().Int("resources", len(entries)).Msg("interrupted rollout found; rolling it back")
	r.update(st, func(rec *EnvRecord) { rec.State = StateRollingBack })
	byHost := map[string][]JournalEntry{}
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
		if err := r.recoverHost(ctx, &h, mine, log.With().Str("host", h.Name).Logger()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.update(st, func(rec *EnvRecord) { rec.State, rec.LastError = StateFailed, "recovery: "+err.Error() })
		return fmt.Errorf("recover interrupted rollout of %s: %w", name, err)
	}
	if err := r.store.EndJournal(name); err != nil {
		return err
	}
	run := Run{Environment: name, Revision: j.Revision, Trigger: TriggerRecovery, Start: start, End: r.now(),
		Result: ResultRolledBack, Changes: len(entries),
		Error: "the daemon stopped during this rollout; it was rolled back at the next start"}
	if _, err := r.store.AddRun(run); err != nil {
		log.Error().Err(err).Msg("cannot record run in history")
	}
	r.m.reconcileTotal.WithLabelValues(name, ResultRolledBack).Inc()
	r.m.rollbacks.WithLabelValues(name, "interrupted").Inc()
	r.update(st, func(rec *EnvRecord) {
		rec.State, rec.LastResult, rec.LastError, rec.LastRun = StateRolledBack, run.Result, run.Error, run.End
	})
	r.report(Report{Environment: name, Source: j.Revision.Source, Commit: j.Revision.Commit, Status: StatusRolledBack,
		Description: "interrupted rollout rolled back at start", Time: run.End})
	log.Warn().Msg("interrupted rollout rolled back")
	return nil
}

// recoverHost reaches one host of an interrupted rollout, removes the
// temporary files an interrupted atomic write may have left beside the
// journal's paths, and restores the host's snapshots.
func (r *Reconciler) recoverHost(ctx context.Context, h *config.Host, entries []JournalEntry, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.HostTimeout)
	defer cancel()
	t, err := r.opts.Dialer.Transport(ctx, h)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", h.Name, err)
	}
	defer t.Close()
	if script := tempCleanup(t.Root(), entries); script != "" {
		if res, err := t.Run(ctx, script, nil); err != nil || res.Exit != 0 {
			log.Warn().Err(err).Int("exit", res.Exit).Msg("cannot remove temporary files of interrupted writes")
		}
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
func tempCleanup(root string, entries []JournalEntry) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, e := range entries {
		p := e.Resource.Name
		if !strings.HasPrefix(p, "/") || seen[p] {
			continue
		}
		seen[p] = true
		dir, base := path.Split(path.Clean(p))
		b.WriteString("for f in " + shellQuote(root+dir) + "/" + shellQuote("."+base+".driftless-") + "*; do " +
			"if [ -f \"$f\" ]; then rm -f -- \"$f\"; fi; done\n")
	}
	return b.String()
}

// shellQuote quotes s as one POSIX shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
