package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// maxDecisions bounds the decisions kept in an environment's record; the
// history keeps every rejection and the approval of every applied revision.
const maxDecisions = 50

// displayState is the state shown for an environment: a gate's state
// while one holds a revision and the applied revision is in order.
func displayState(rec store.EnvRecord) string {
	if rec.Gate != nil && (rec.State == status.StateSynced || rec.State == status.StateUnknown || rec.State == "") {
		return rec.Gate.State
	}
	if rec.State == "" {
		return status.StateUnknown
	}
	return rec.State
}

// policy is the newest configuration of a gated environment: the newest
// revision of its own source, else the applied one.
func (st *envState) policy() *config.Environment {
	if st.latest != nil {
		return st.latest.env
	}
	return st.applied
}

// advance takes the environment's gated revision as far as its gates let
// it: promotion, then deploy windows (unless force), then approval. When
// every gate is open it rolls the revision out and returns the run with
// ok true. Otherwise it records where the revision waits and when to look
// again. A gate is a wait, not a failure: nothing is retried until an
// upstream changes, a decision is taken, the soak ends or the next drift
// pass. Only the environment's worker calls it.
func (r *Reconciler) advance(ctx context.Context, st *envState, trigger string, force bool) (run store.Run, ok bool) {
	latest, rec := st.latest, st.rec
	if latest == nil || !latest.env.Gated() {
		return store.Run{}, false
	}
	pol, now := latest.env, r.now()
	gate := &store.Gate{Since: now}
	cand, ready := latest.rev, true
	var reason string
	var until time.Time
	if pol.Promote != nil {
		// A commit that passed promotion once (it waits further on) stays
		// promoted while the upstreams still have it applied: drift on an
		// upstream, or a drift pass that failed, does not send it back.
		passed := ""
		if g := rec.Gate; g != nil && g.State != status.StateWaiting {
			passed = g.Revision.Commit
		}
		cand, reason, until, ready = r.promotion(st, pol, latest.rev, now, passed)
	}
	if cand.Commit == "" && ready || cand.Commit != "" && (cand.Commit == rec.Applied.Commit || cand.Commit == rec.Taken || rec.IsQuarantined(cand.Commit)) {
		// Nothing new: a rejected revision keeps showing as rejected.
		if rec.Gate != nil && (rec.Gate.State != status.StateRejected || rec.Gate.Revision.Commit != cand.Commit) {
			r.setGate(st, nil, time.Time{})
		}
		return store.Run{}, false
	}
	gate.Revision = cand
	if !ready {
		gate.State, gate.Reason, gate.Until = status.StateWaiting, reason, until
		if !until.IsZero() {
			gate.Reason = fmt.Sprintf("soaking until %s (%s)", until.UTC().Format(time.RFC3339), reason)
		}
		r.setGate(st, gate, until)
		return store.Run{}, false
	}
	if !force {
		if v := config.CheckWindows(pol.Windows, now); !v.Open {
			gate.State, gate.Until = status.StateWindowClosed, v.Until
			gate.Reason = "window closed until " + v.Until.UTC().Format(time.RFC3339) + ": " + v.Reason
			wake := v.Until
			if v.Until.IsZero() {
				gate.Reason = "window closed with no end within a year: " + v.Reason
			}
			if !wake.After(now) {
				wake = now.Add(time.Hour)
			}
			r.setGate(st, gate, wake)
			return store.Run{}, false
		}
	}
	var dec *store.Decision
	if pol.Approval != nil && pol.Approval.Required {
		if dec = rec.Decision(cand.Commit); dec == nil {
			dec = r.mergedDecision(ctx, rec, cand)
		}
		switch {
		case dec == nil:
			// The plan first, so that whoever sees the state sees the plan.
			r.planGate(ctx, st, cand, latest)
			gate.State, gate.Reason = status.StateAwaitingApproval, "awaiting approval of "+cand.Short()
			r.setGate(st, gate, time.Time{})
			return store.Run{}, false
		case !dec.Approved:
			gate.State, gate.Reason = status.StateRejected, fmt.Sprintf("rejected by %s at %s", dec.By, dec.At.UTC().Format(time.RFC3339))
			r.setGate(st, gate, time.Time{})
			r.update(st, func(rec *store.EnvRecord) { rec.Taken = cand.Commit })
			return store.Run{}, false
		}
	}
	tg := *latest
	if !sources.SameRevision(cand, latest.rev) {
		var err error
		if tg, err = r.resolve(ctx, pol.Name, cand); err != nil {
			gate.State, gate.Reason = status.StateWaiting, "promoted commit not available: "+err.Error()
			r.setGate(st, gate, time.Time{})
			return store.Run{}, false
		}
	}
	tg.decision, tg.forced = dec, force
	r.update(st, func(rec *store.EnvRecord) { rec.Gate, rec.Taken = nil, cand.Commit })
	st.desired, st.gatePlan, st.wakeAt = &tg, nil, time.Time{}
	r.m.setPending(pol.Name, nil)
	return r.rollout(ctx, st, tg, trigger), true
}

// promotion finds the commit the upstreams of pol agree on. It returns
// that commit (as a revision of the environment's own source), and, while
// the commit may not go through yet, why (with until the end of the soak).
// An upstream that still has passed (a commit that went through promotion
// before) applied needs no soak for it.
func (r *Reconciler) promotion(st *envState, pol *config.Environment, own sources.Revision, now time.Time, passed string) (cand sources.Revision, reason string, until time.Time, ready bool) {
	if st.promotionErr != "" {
		return sources.Revision{}, "promotion refused: " + st.promotionErr, time.Time{}, false
	}
	r.mu.Lock()
	upstreams := map[string]*envState{}
	for _, up := range pol.Promote.From {
		upstreams[up] = r.envs[up]
	}
	r.mu.Unlock()
	var agreed *sources.Revision
	var waiting, disagree []string
	for _, up := range pol.Promote.From {
		// Another environment: what its worker last published.
		var u store.EnvRecord
		if st := upstreams[up]; st != nil {
			u = st.snap.Load().rec
		}
		if u.State == status.StateRemoved || u.Applied.Commit == "" {
			waiting = append(waiting, up)
			continue
		}
		a := u.Applied
		if agreed == nil {
			agreed = &a
		} else if !sources.SameRevision(*agreed, a) {
			disagree = append(disagree, up)
		}
		if passed != "" && a.Commit == passed {
			continue
		}
		if u.State != status.StateSynced || u.CleanSince.IsZero() {
			waiting = append(waiting, up)
			continue
		}
		if end := u.CleanSince.Add(pol.Promote.Soak.D()); end.After(until) {
			until = end
		}
	}
	switch {
	case agreed == nil || len(waiting) > 0:
		if agreed != nil {
			cand = *agreed
		}
		return sources.Revision{Commit: cand.Commit, Repo: cand.Repo}, "waiting for " + strings.Join(waiting, ", "), time.Time{}, false
	case len(disagree) > 0:
		return sources.Revision{}, "waiting for " + strings.Join(pol.Promote.From, ", ") + " to agree on one commit", time.Time{}, false
	case agreed.Repo != own.Repo:
		return sources.Revision{}, fmt.Sprintf("waiting for %s: it applied a commit of repository %q, this environment follows %q",
			strings.Join(pol.Promote.From, ", "), agreed.Repo, own.Repo), time.Time{}, false
	}
	cand = sources.Revision{Source: own.Source, Commit: agreed.Commit, Repo: own.Repo, Ref: own.Ref, Time: now}
	if sources.SameRevision(cand, own) {
		cand = own
	}
	if now.Before(until) {
		return cand, strings.Join(pol.Promote.From, ", "), until, false
	}
	return cand, "", time.Time{}, true
}

// setGate records where the environment's revision waits (nil: nowhere)
// and when the worker should look again (zero: on events only). A revision
// keeps the time it started waiting while it stays the same.
func (r *Reconciler) setGate(st *envState, g *store.Gate, wake time.Time) {
	old := st.rec.Gate
	st.wakeAt = wake
	if g != nil && old != nil && old.Revision.Commit == g.Revision.Commit {
		g.Since = old.Since
	}
	if g == nil && old == nil || g != nil && old != nil && *g == *old {
		return
	}
	r.update(st, func(rec *store.EnvRecord) { rec.Gate = g })
	r.m.setPending(st.rec.Name, g)
	if g == nil {
		return
	}
	log := r.log.With().Str("environment", st.rec.Name).Str("revision", g.Revision.Short()).Logger()
	if old == nil || old.State != g.State || old.Revision.Commit != g.Revision.Commit {
		log.Info().Str("state", g.State).Str("reason", g.Reason).Msg("revision held at a gate")
		r.report(status.Report{Environment: st.rec.Name, Source: g.Revision.Source, Commit: g.Revision.Commit,
			Status: status.StatusPending, Gate: g.State, Description: g.Reason})
	}
}

// planGate computes, once per revision, the plan of a revision awaiting
// approval, so approvers see what it would change (API, status page, and
// through the reporters the pull request that brought the commit).
func (r *Reconciler) planGate(ctx context.Context, st *envState, cand sources.Revision, latest *target) {
	have := st.gatePlan != nil && st.gatePlan.Commit == cand.Commit
	prev := st.applied
	if have {
		return
	}
	tg := *latest
	if !sources.SameRevision(cand, latest.rev) {
		var err error
		if tg, err = r.resolve(ctx, latest.env.Name, cand); err != nil {
			r.log.Warn().Str("environment", latest.env.Name).Err(err).Msg("cannot plan the revision awaiting approval")
			return
		}
	}
	p, hosts := r.plan(ctx, tg, prev)
	st.gatePlan = p
	// Operators see the whole plan (API, status page); reports leave the
	// daemon, so they carry the published plan, without host content.
	r.report(status.Report{Environment: p.Environment, Source: cand.Source, Commit: cand.Commit, Status: status.StatusPending,
		Gate: status.StateAwaitingApproval, Description: "awaiting approval", Plan: r.published(p, hosts), Gates: gateInfo(latest.env)})
}

// checkPromotions records the environments a source's revision declares
// and, once every configured source has produced a revision, checks the
// promotions across all of them: an upstream no source declares, or a
// cycle through environments of several sources. Each environment whose
// promote.from is at fault shows the error (status, API, status page),
// reports it once as a failure, and takes no promoted revision until a
// revision corrects it; the others go on.
func (r *Reconciler) checkPromotions(rev sources.Revision, cfg *config.Revision) {
	r.mu.Lock()
	r.declared[rev.Source] = cfg.Environments
	var all []*config.Environment
	complete := true
	for _, name := range r.opts.Sources {
		envs, ok := r.declared[name]
		complete = complete && ok
		all = append(all, envs...)
	}
	r.mu.Unlock()
	if !complete || len(r.opts.Sources) == 0 {
		return
	}
	errs := map[string][]string{}
	for _, e := range append(config.UnknownUpstreams(all), config.PromotionErrors(all)...) {
		r.log.Error().Str("source", rev.Source).Str("revision", rev.Short()).Str("err", e.Error()).Msg("invalid promotion")
		for _, env := range all {
			if env.Promote != nil && slices.Contains(env.Promote.FromPos, e.Pos) {
				errs[env.Name] = append(errs[env.Name], e.Error())
			}
		}
	}
	changed := map[string]string{}
	r.mu.Lock()
	for _, env := range all {
		if env.Preview { // a template is no environment (previewenv.go)
			continue
		}
		msg := strings.Join(errs[env.Name], "; ")
		if r.promotionErr[env.Name] != msg {
			r.promotionErr[env.Name] = msg
			changed[env.Name] = msg
		}
	}
	r.mu.Unlock()
	for name, msg := range changed {
		r.send(name, request{kind: reqPromotion, rev: rev, note: msg})
	}
}

// promotionNotice is a change of the environment's promotion error on its
// worker: reported once (and again at the reminder interval); the gates
// are looked at again.
func (r *Reconciler) promotionNotice(st *envState, rev sources.Revision, msg string) {
	st.promotionErr = msg
	if msg != "" && r.noticeDue(st, noticePromotion, msg) {
		r.report(status.Report{Environment: st.name(), Source: rev.Source, Commit: rev.Commit, Status: status.StatusFailure,
			Description: "promotion refused: " + msg})
	} else if msg == "" {
		r.noticeDue(st, noticePromotion, "")
	}
}
