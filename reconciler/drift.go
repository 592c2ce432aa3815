package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// driftMode is the mode that applies to a resource: its own, else its
// environment's, else enforce.
func driftMode(env *config.Environment, res config.Resource) config.DriftMode {
	if res.Drift != config.DriftInherit {
		return res.Drift
	}
	if env.Drift != config.DriftInherit {
		return env.Drift
	}
	return config.DriftEnforce
}

type driftKey struct{ host, kind, mode string }

// drift observes every host of the applied revision and handles each
// difference by its mode: enforce corrects it (logging the diff), warn
// reports it, ignore only counts it. Without correct (a deploy window
// holds changes back) enforce only reports, as warn. A resource in held
// (keys "host id") is only reported, whatever its mode: an unfinished
// rollback still has to restore it. A host that cannot be observed keeps
// the drift it had. The run is recorded by finish, deferred.
func (r *Reconciler) drift(ctx context.Context, st *envState, trigger string, correct bool, held map[string]bool) (run store.Run, err error) {
	env, rev := st.applied, st.rec.Applied
	run = store.Run{Environment: env.Name, Revision: rev, Trigger: trigger, Start: r.now()}
	out := &outcome{kind: outDrift, tg: target{rev: rev, env: env}, run: &run}
	defer r.finish(ctx, st, out)
	log := r.log.With().Str("environment", env.Name).Str("revision", rev.Short()).Logger()
	r.keepHosts(env)
	hosts := r.planEnv(ctx, env, nil, false, planTrusted, log)
	defer closeHosts(hosts)

	counts := map[driftKey]int{}
	open := map[string]bool{}
	var corrected []string
	var errs []error
	for _, h := range hosts {
		if h.failed() {
			h.log.Warn().Str("err", h.plan.Err).Msg("host not observed in drift pass")
			r.keepDrift(st, h.host.Name, counts, open)
			continue
		}
		var enforce []config.Resource
		for _, res := range h.order {
			c := h.changes[res.ID()]
			mode := driftMode(env, res)
			if mode == config.DriftEnforce && !correct {
				mode = config.DriftWarn
			}
			key := h.host.Name + " " + res.ID()
			switch {
			case mode == config.DriftIgnore:
				counts[driftKey{h.host.Name, res.Kind, string(mode)}]++
			case mode == config.DriftWarn || held[key]:
				counts[driftKey{h.host.Name, res.Kind, string(mode)}]++
				open[key] = true
				msg := "drift detected"
				if held[key] {
					msg = "drift detected; not corrected until the unfinished rollback is"
				}
				h.log.Warn().Str("resource", res.ID()).Str("diff", c.Diff).Msg(msg)
			default:
				enforce = append(enforce, res)
			}
		}
		if len(enforce) == 0 {
			continue
		}
		for _, res := range enforce {
			h.log.Info().Str("resource", res.ID()).Str("diff", h.changes[res.ID()].Diff).Msg("correcting drift")
		}
		sub := *h
		sub.order = enforce
		n, err := r.applyHost(ctx, env.Name, &sub, false)
		run.Changes += n
		run.Changed = append(run.Changed, sub.applied...)
		for _, res := range enforce[:n] {
			corrected = append(corrected, h.host.Name+":"+res.ID())
		}
		if err != nil {
			errs = append(errs, err)
			for _, res := range enforce[n:] {
				counts[driftKey{h.host.Name, res.Kind, string(config.DriftEnforce)}]++
				open[h.host.Name+" "+res.ID()] = true
			}
		}
	}
	r.setDriftMetrics(st, env.Name, counts, open)
	r.reportDrift(st, env.Name, rev, corrected, open)
	run.End = r.now()
	run.Result = status.ResultNoop
	switch {
	case len(errs) > 0:
		run.Result, run.Error, run.ErrorClass = status.ResultFailed, errors.Join(errs...).Error(), status.ErrorApply
	case run.Changes > 0:
		run.Result = status.ResultSuccess
	}
	log.Debug().Str("trigger", trigger).Str("result", run.Result).Int("changes", run.Changes).Int("drift_resources", len(open)).
		Dur("duration_ms", run.End.Sub(run.Start)).Msg("drift pass")
	out.clean = len(open) == 0
	if run.Result == status.ResultFailed {
		return run, fmt.Errorf("drift pass of %s: %s", env.Name, run.Error)
	}
	return run, nil
}

// markClean keeps CleanSince after a drift pass: zero while drift stays
// open or the pass failed, the pass's end after it corrected drift (the
// soak of downstream environments starts again), unchanged otherwise. A
// change wakes the environments that may promote from this one. A pass
// cut short by the daemon stopping says nothing about the revision: the
// soak of downstream environments is kept across a restart.
func (r *Reconciler) markClean(ctx context.Context, st *envState, name string, run store.Run, clean bool) {
	if ctx.Err() != nil {
		return
	}
	since, state := st.rec.CleanSince, st.rec.State
	next := since
	switch {
	case run.Result == status.ResultFailed || !clean:
		next = time.Time{}
	case run.Changes > 0, since.IsZero() && state == status.StateSynced:
		next = run.End
	}
	if next.Equal(since) {
		return
	}
	r.update(st, func(rec *store.EnvRecord) { rec.CleanSince = next })
	r.wakeOthers(name)
}

// reportDrift reports changes of the environment's drift: drift that
// appears, grows, shrinks or is gone, and corrections (someone or
// something changed a host behind driftless's back, which people want to
// hear about). Drift left as it was, or corrected again pass after pass, is
// reported again only after the reminder interval.
func (r *Reconciler) reportDrift(st *envState, env string, rev sources.Revision, corrected []string, open map[string]bool) {
	var left []string
	for k := range open {
		left = append(left, strings.Replace(k, " ", ":", 1))
	}
	sort.Strings(left)
	sort.Strings(corrected)
	var desc []string
	if len(corrected) > 0 && r.noticeDue(st, noticeCorrected, strings.Join(corrected, " ")) {
		desc = append(desc, fmt.Sprintf("%d resource(s) corrected: %s", len(corrected), strings.Join(corrected, ", ")))
	} else if len(corrected) == 0 {
		r.noticeDue(st, noticeCorrected, "")
	}
	switch {
	case len(left) > 0 && r.noticeDue(st, noticeDrift, strings.Join(left, " ")):
		desc = append(desc, fmt.Sprintf("%d resource(s) drifted: %s", len(left), strings.Join(left, ", ")))
	case len(left) == 0 && r.noticeDue(st, noticeDrift, ""):
		desc = append(desc, "no drift left: every host observed matches the applied revision")
	}
	if len(desc) > 0 {
		r.report(status.Report{Environment: env, Source: rev.Source, Commit: rev.Commit, Status: status.StatusDrift,
			Description: strings.Join(desc, "; ")})
	}
}

// keepDrift copies into counts and open what the last pass found on a
// host that this pass could not observe: its drift is unknown, not gone.
func (r *Reconciler) keepDrift(st *envState, host string, counts map[driftKey]int, open map[string]bool) {
	for k, n := range st.driftCounts {
		if k.host == host {
			counts[k] = n
		}
	}
	for k := range st.driftSince {
		if strings.HasPrefix(k, host+" ") {
			open[k] = true
		}
	}
}

// setDriftMetrics updates the environment's drift series (deleting only
// those whose drift is gone, so a series lives as long as its drift) and
// tracks how long each uncorrected drift has been open.
func (r *Reconciler) setDriftMetrics(st *envState, env string, counts map[driftKey]int, open map[string]bool) {
	now := r.now()
	old := st.driftCounts
	st.driftCounts = counts
	for k := range old {
		if _, ok := counts[k]; !ok {
			r.m.drift.DeleteLabelValues(env, k.host, k.kind, k.mode)
		}
	}
	for k, n := range counts {
		r.m.drift.WithLabelValues(env, k.host, k.kind, k.mode).Set(float64(n))
	}
	for k := range st.driftSince {
		if !open[k] {
			delete(st.driftSince, k)
		}
	}
	oldest := time.Duration(0)
	for k := range open {
		since, ok := st.driftSince[k]
		if !ok {
			since = now
			st.driftSince[k] = now
		}
		oldest = max(oldest, now.Sub(since))
	}
	st.driftCount = len(open)
	state := st.rec.State
	r.m.driftOldest.WithLabelValues(env).Set(oldest.Seconds())
	switch {
	case state == status.StateBlocked:
		// Blocked says more than drifted, and only the end of the
		// rollback ends it.
	case len(open) > 0 && state != status.StateDrifted:
		r.update(st, func(rec *store.EnvRecord) { rec.State = status.StateDrifted })
	case len(open) == 0 && state == status.StateDrifted:
		r.update(st, func(rec *store.EnvRecord) { rec.State = status.StateSynced })
	}
}
