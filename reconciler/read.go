package reconciler

import (
	"sort"
	"strings"
	"time"

	"github.com/driftless/driftless/targets"
)

// HostStatus says whether a host answered its last observation.
type HostStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// DriftResources counts the host's resources drifted and not
	// corrected (warn mode, or a correction that failed); DriftSince is
	// when the oldest of them was first seen (zero when none).
	DriftResources int       `json:"drift_resources"`
	DriftSince     time.Time `json:"drift_since,omitzero"`
}

// EnvStatus is the state of one environment, for the API and status page.
type EnvStatus struct {
	Name string `json:"name"`
	// Applied and LastGood are full commits ("" when none).
	Applied        string   `json:"applied"`
	AppliedSource  string   `json:"applied_source,omitempty"`
	LastGood       string   `json:"last_good"`
	Quarantined    []string `json:"quarantined,omitempty"`
	State          string   `json:"state"`
	DriftResources int      `json:"drift_resources"`
	LastResult     string   `json:"last_result,omitempty"`
	LastError      string   `json:"last_error,omitempty"`
	// Refused says that the newest commit of the environment's source was
	// refused for its signature ("" when not): the applied revision stays.
	Refused string `json:"refused,omitempty"`
	// LastErrorClass says what failed in the last run: plan, apply,
	// verification or interrupted.
	LastErrorClass string `json:"last_error_class,omitempty"`
	// DriftSince is when the oldest open drift was first seen (zero when none).
	DriftSince time.Time `json:"drift_since,omitzero"`
	// LastRun is the end of the last run (zero when none).
	LastRun time.Time    `json:"last_run"`
	Hosts   []HostStatus `json:"hosts,omitempty"`
	// Gate is the revision held back by a gate and why (nil: none).
	Gate *Gate `json:"gate,omitempty"`
	// GatePlan is what the revision awaiting approval would change.
	GatePlan *Plan `json:"gate_plan,omitempty"`
	// Decisions are the newest approvals and rejections, newest first.
	Decisions []Decision `json:"decisions,omitempty"`
	// PromotionError says why the environment's promotion is refused
	// across the sources' revisions (an upstream no source declares, a
	// cycle); "" when it is not.
	PromotionError string `json:"promotion_error,omitempty"`
	// Preview describes a pull request's preview environment (nil for
	// any other).
	Preview *PreviewStatus `json:"preview,omitempty"`
}

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
