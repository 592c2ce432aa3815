package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// maxQuarantined bounds the quarantine list: only recent commits can come
// back, and the record must not grow without end.
const maxQuarantined = 50

// rollback restores the journal's snapshots on every touched host, newest
// first, verifies those hosts again with the checks of the revision they
// are back on (prev; none when there is no previous revision), closes the
// journal and quarantines the revision's commit. When a snapshot cannot be
// restored the journal stays open: the rollback is then finished by the
// recovery that runs before the environment's next run.
func (r *Reconciler) rollback(ctx context.Context, st *envState, env, prev *config.Environment, touched []*hostRun, reason string) error {
	log := r.log.With().Str("environment", env.Name).Logger()
	r.update(st, func(rec *store.EnvRecord) { rec.State = status.StateRollingBack })
	r.m.rollbacks.WithLabelValues(env.Name, reason).Inc()
	j, entries, err := r.store.OpenJournal(env.Name)
	if err != nil {
		return err
	}
	if j != nil {
		log = log.With().Str("revision", j.Revision.Short()).Logger()
	}
	var restoreErrs, errs []error
	for i := len(touched) - 1; i >= 0; i-- {
		h := touched[i]
		var mine []store.JournalEntry
		for _, e := range entries {
			if e.Host == h.host.Name {
				mine = append(mine, e)
			}
		}
		lookup := func(id string) (config.Resource, bool) { res, ok := h.byID[id]; return res, ok }
		// The rollback is about the whole rollout, not one of its batches.
		h.batch, h.batches = 0, 0
		r.emit(env.Name, h, status.StepRollback, status.StatusStarted, len(mine))
		fctx, end, err := r.fenceHost(ctx, h.t, env.Name, hostOpRollback)
		if err == nil {
			err = hostWriteErr(r.restoreEntries(fctx, h.t, h.host, mine, lookup, h.log))
		}
		end()
		r.emit(env.Name, h, status.StepRollback, statusOf(err == nil), len(mine))
		if err != nil {
			restoreErrs = append(restoreErrs, err)
		}
	}
	for _, h := range touched {
		ph := hostOf(prev, h.host.Name)
		if ph == nil {
			continue
		}
		if _, err := r.verifyHost(ctx, env.Name, h, ph); err != nil {
			h.log.Warn().Err(err).Msg("verification after rollback failed")
			errs = append(errs, fmt.Errorf("after rollback: %w", err))
		}
	}
	if len(restoreErrs) == 0 && ctx.Err() == nil {
		if err := r.store.EndJournal(env.Name); err != nil {
			errs = append(errs, err)
		} else {
			st.journalOpen = false
		}
	} else {
		log.Error().Err(errors.Join(restoreErrs...)).Msg("rollback incomplete; it is retried before the next run")
	}
	if j != nil {
		r.quarantine(st, j.Revision)
		log.Warn().Msg("revision rolled back and quarantined")
	}
	return errors.Join(append(restoreErrs, errs...)...)
}

// hostOf returns the host of env named name, or nil.
func hostOf(env *config.Environment, name string) *config.Host {
	if env == nil {
		return nil
	}
	for _, h := range env.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// quarantine adds the revision's commit, and its tree when it has one, to
// the environment's quarantine lists: a later commit that declares the
// same tree (one that only touched another source's path, or was sent
// again after a restart) is the same rolled-back change.
func (r *Reconciler) quarantine(st *envState, rev sources.Revision) {
	r.update(st, func(rec *store.EnvRecord) {
		rec.Quarantined = appendBounded(rec.Quarantined, rev.Commit)
		if rev.Tree != "" {
			rec.QuarantinedTrees = appendBounded(rec.QuarantinedTrees, rev.Tree)
		}
	})
}

// appendBounded adds s to list unless it is there, keeping the newest
// maxQuarantined.
func appendBounded(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	list = append(list, s)
	if len(list) > maxQuarantined {
		list = list[len(list)-maxQuarantined:]
	}
	return list
}
