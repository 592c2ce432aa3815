package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftless/driftless/config"
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
// holds changes back) enforce only reports, as warn. The caller holds st.op.
func (r *Reconciler) drift(ctx context.Context, st *envState, trigger string, correct bool) (Run, error) {
	r.mu.Lock()
	env, rev := st.applied, st.rec.Applied
	r.mu.Unlock()
	run := Run{Environment: env.Name, Revision: rev, Trigger: trigger, Start: r.now()}
	log := r.log.With().Str("environment", env.Name).Str("revision", rev.Short()).Logger()
	r.forgetHosts(env.Name)
	hosts := r.planEnv(ctx, env, nil, false, true, log)
	defer closeHosts(hosts)

	counts := map[driftKey]int{}
	open := map[string]bool{}
	var warned, corrected []string
	var errs []error
	for _, h := range hosts {
		if h.failed() {
			h.log.Warn().Str("err", h.plan.Err).Msg("host not observed in drift pass")
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
			switch mode {
			case config.DriftIgnore:
				counts[driftKey{h.host.Name, res.Kind, string(mode)}]++
			case config.DriftWarn:
				counts[driftKey{h.host.Name, res.Kind, string(mode)}]++
				open[key] = true
				warned = append(warned, h.host.Name+":"+res.ID())
				h.log.Warn().Str("resource", res.ID()).Str("diff", c.Diff).Msg("drift detected")
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
	// Corrections are reported too: someone or something changed a host
	// behind driftless's back, which people want to hear about.
	var desc []string
	if len(corrected) > 0 {
		sort.Strings(corrected)
		desc = append(desc, fmt.Sprintf("%d resource(s) corrected: %s", len(corrected), strings.Join(corrected, ", ")))
	}
	if len(warned) > 0 {
		sort.Strings(warned)
		desc = append(desc, fmt.Sprintf("%d resource(s) drifted: %s", len(warned), strings.Join(warned, ", ")))
	}
	if len(desc) > 0 {
		r.report(Report{Environment: env.Name, Source: rev.Source, Commit: rev.Commit, Status: StatusDrift,
			Description: strings.Join(desc, "; ")})
	}
	run.End = r.now()
	run.Result = ResultNoop
	switch {
	case len(errs) > 0:
		run.Result, run.Error = ResultFailed, errors.Join(errs...).Error()
	case run.Changes > 0:
		run.Result = ResultSuccess
	}
	r.m.reconcileTotal.WithLabelValues(env.Name, run.Result).Inc()
	r.m.duration.WithLabelValues(env.Name).Observe(run.End.Sub(run.Start).Seconds())
	// Quiet passes are counted but not written to history, so the history
	// keeps the runs that did something.
	if run.Result != ResultNoop || trigger != TriggerDrift {
		if id, err := r.store.AddRun(run); err != nil {
			log.Error().Err(err).Msg("cannot record run in history")
		} else {
			run.ID = id
		}
	}
	r.markClean(st, env.Name, run, len(open) == 0)
	if run.Result == ResultFailed {
		return run, fmt.Errorf("drift pass of %s: %s", env.Name, run.Error)
	}
	return run, nil
}

// markClean keeps CleanSince after a drift pass: zero while drift stays
// open or the pass failed, the pass's end after it corrected drift (the
// soak of downstream environments starts again), unchanged otherwise. A
// change wakes the environments that may promote from this one.
func (r *Reconciler) markClean(st *envState, name string, run Run, clean bool) {
	r.mu.Lock()
	since, state := st.rec.CleanSince, st.rec.State
	r.mu.Unlock()
	next := since
	switch {
	case run.Result == ResultFailed || !clean:
		next = time.Time{}
	case run.Changes > 0, since.IsZero() && state == StateSynced:
		next = run.End
	}
	if next.Equal(since) {
		return
	}
	r.update(st, func(rec *EnvRecord) { rec.CleanSince = next })
	r.wakeOthers(name)
}

// setDriftMetrics replaces the environment's drift series and tracks how
// long each uncorrected drift has been open.
func (r *Reconciler) setDriftMetrics(st *envState, env string, counts map[driftKey]int, open map[string]bool) {
	now := r.now()
	r.m.drift.DeletePartialMatch(prometheus.Labels{"environment": env})
	for k, n := range counts {
		r.m.drift.WithLabelValues(env, k.host, k.kind, k.mode).Set(float64(n))
	}
	r.mu.Lock()
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
	r.mu.Unlock()
	r.m.driftOldest.WithLabelValues(env).Set(oldest.Seconds())
	switch {
	case len(open) > 0 && state != StateDrifted:
		r.update(st, func(rec *EnvRecord) { rec.State = StateDrifted })
	case len(open) == 0 && state == StateDrifted:
		r.update(st, func(rec *EnvRecord) { rec.State = StateSynced })
	}
}
