package reconciler

import (
	"sort"
	"strings"
	"time"

	"github.com/driftless/driftless/targets"
)

// Environments returns the status of every known environment, by name.
func (r *Reconciler) Environments() []EnvStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]EnvStatus, 0, len(r.envs))
	for _, st := range r.envs {
		s := st.status()
		s.Refused = r.refusal(st)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Environment returns the status of one environment; ok is false when it
// is unknown.
func (r *Reconciler) Environment(name string) (EnvStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.envs[name]
	if !ok {
		return EnvStatus{}, false
	}
	s := st.status()
	s.Refused = r.refusal(st)
	return s, true
}

// History returns up to limit runs of the environment, newest first
// (limit <= 0: all of them).
func (r *Reconciler) History(name string, limit int) ([]Run, error) {
	return r.store.History(name, limit)
}

// status copies the state; the caller holds Reconciler.mu.
func (st *envState) status() EnvStatus {
	s := EnvStatus{
		Name: st.rec.Name, Applied: st.rec.Applied.Commit, AppliedSource: st.rec.Applied.Source,
		LastGood: st.rec.LastGood.Commit, Quarantined: append([]string(nil), st.rec.Quarantined...),
		State: displayState(st.rec), DriftResources: st.driftCount, LastResult: st.rec.LastResult,
		LastError: st.rec.LastError, LastErrorClass: st.rec.LastErrorClass, LastRun: st.rec.LastRun,
		PromotionError: st.promotionErr, Preview: previewStatus(st.rec),
		Class: classOf(st.rec), RetryAt: st.retryAt, Retries: st.retries,
	}
	if g := st.rec.Gate; g != nil {
		gate := *g
		s.Gate = &gate
		if st.gatePlan != nil && st.gatePlan.Commit == g.Revision.Commit && g.State == StateAwaitingApproval {
			s.GatePlan = withoutSnapshots(st.gatePlan)
		}
	}
	for i := len(st.rec.Decisions) - 1; i >= 0; i-- {
		s.Decisions = append(s.Decisions, st.rec.Decisions[i])
	}
	type drift struct {
		n     int
		since time.Time
	}
	hosts := map[string]drift{}
	for key, since := range st.driftSince {
		host, _, _ := strings.Cut(key, " ")
		d := hosts[host]
		d.n++
		if d.since.IsZero() || since.Before(d.since) {
			d.since = since
		}
		hosts[host] = d
		if s.DriftSince.IsZero() || since.Before(s.DriftSince) {
			s.DriftSince = since
		}
	}
	for name, up := range st.hostUp {
		s.Hosts = append(s.Hosts, HostStatus{Name: name, Up: up, DriftResources: hosts[name].n, DriftSince: hosts[name].since})
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })
	return s
}

// withoutSnapshots copies a plan without the observed states (the
// snapshots restore needs), which may hold a host's file contents: the
// diffs say what would change.
func withoutSnapshots(p *Plan) *Plan {
	out := &Plan{Environment: p.Environment, Commit: p.Commit}
	for _, h := range p.Hosts {
		hp := HostPlan{Host: h.Host, Err: h.Err}
		for _, c := range h.Changes {
			c.Before = targets.State{}
			hp.Changes = append(hp.Changes, c)
		}
		out.Hosts = append(out.Hosts, hp)
	}
	return out
}

// classOf says what kind of trouble an environment is in ("" when none):
// a failure first (it is what an operator must look at), then a revision
// held at the gates.
func classOf(rec EnvRecord) string {
	switch {
	case rec.State == StateBlocked, rec.State == StateFailed:
		return ClassTransient
	case rec.State == StateRolledBack:
		return ClassStalled
	case rec.Gate != nil && rec.Gate.State == StateRejected:
		return ClassStalled
	case rec.Gate != nil:
		return ClassWaiting
	}
	return ""
}
