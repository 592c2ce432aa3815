package reconciler

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// snapshot is what an environment's worker publishes for everyone else
// (API, status page, the source loop, other environments' promotions):
// a copy of its state taken between two steps, never changed after.
type snapshot struct {
	rec store.EnvRecord
	// status is the environment's status without its hosts (status adds
	// them as they are now).
	status status.EnvStatus
	// hostDrift counts the open drift of each host, and since when.
	hostDrift map[string]hostDrift
	// source is where its revisions come from (envSource).
	source string
	// applied is the configuration of the applied revision, when loaded;
	// latest is the newest revision of its source the worker took in.
	applied *config.Environment
	latest  string
}

type hostDrift struct {
	n     int
	since time.Time
}

// publish takes the environment's snapshot. Only its worker calls it
// (and newEnvState, before there is one).
func (st *envState) publish() {
	rec := st.rec
	rec.Quarantined = slices.Clone(rec.Quarantined)
	rec.QuarantinedTrees = slices.Clone(rec.QuarantinedTrees)
	rec.Decisions = slices.Clone(rec.Decisions)
	if rec.Gate != nil {
		g := *rec.Gate
		rec.Gate = &g
	}
	if rec.Preview != nil {
		p := *rec.Preview
		p.Hosts = slices.Clone(p.Hosts)
		rec.Preview = &p
	}
	snap := &snapshot{rec: rec, source: envSource(st), applied: st.applied, hostDrift: map[string]hostDrift{}}
	if st.latest != nil {
		snap.latest = st.latest.rev.Commit
	}
	s := recordStatus(rec)
	s.DriftResources, s.Refused, s.PromotionError, s.RetryAt, s.Retries = st.driftCount, st.refused, st.promotionErr, st.retryAt, st.retries
	if g := rec.Gate; g != nil && st.gatePlan != nil && st.gatePlan.Commit == g.Revision.Commit && g.State == status.StateAwaitingApproval {
		s.GatePlan = withoutSnapshots(st.gatePlan)
	}
	for key, since := range st.driftSince {
		host, _, _ := strings.Cut(key, " ")
		d := snap.hostDrift[host]
		d.n++
		if d.since.IsZero() || since.Before(d.since) {
			d.since = since
		}
		snap.hostDrift[host] = d
		if s.DriftSince.IsZero() || since.Before(s.DriftSince) {
			s.DriftSince = since
		}
	}
	snap.status = s
	st.snap.Store(snap)
}

// recordStatus is the part of an environment's status its record holds.
func recordStatus(rec store.EnvRecord) status.EnvStatus {
	s := status.EnvStatus{
		Name: rec.Name, Applied: rec.Applied.Commit, AppliedSource: rec.Applied.Source,
		LastGood: rec.LastGood.Commit, Quarantined: slices.Clone(rec.Quarantined),
		State: displayState(rec), LastResult: rec.LastResult,
		LastError: rec.LastError, LastErrorClass: rec.LastErrorClass, LastRun: rec.LastRun,
		Preview: previewStatus(rec), Class: classOf(rec),
	}
	if g := rec.Gate; g != nil {
		gate := *g
		s.Gate = &gate
	}
	for i := len(rec.Decisions) - 1; i >= 0; i-- {
		s.Decisions = append(s.Decisions, rec.Decisions[i])
	}
	return s
}

// Environments returns the status of every known environment, by name.
// In a cluster, an environment another replica owns has no worker here:
// its status is its record as the owner last wrote it in the shared store
// (without the hosts, which only its owner observes), and every
// environment the store or the sources know is listed.
func (r *Reconciler) Environments() []status.EnvStatus {
	r.mu.Lock()
	states := make([]*envState, 0, len(r.envs))
	for _, st := range r.envs {
		states = append(states, st)
	}
	declared := make([]string, 0, len(r.pending))
	for name := range r.pending {
		declared = append(declared, name)
	}
	r.mu.Unlock()
	out := make([]status.EnvStatus, 0, len(states))
	if r.opts.Ownership == nil {
		for _, st := range states {
			out = append(out, r.status(st))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	seen := map[string]bool{}
	for _, st := range states {
		// The name from the snapshot: the record is the worker's.
		if name := st.snap.Load().rec.Name; r.owned(name) {
			seen[name] = true
			out = append(out, r.status(st))
		}
	}
	recs, err := r.opts.Store.Envs()
	if err != nil {
		r.log.Error().Err(err).Msg("cannot read the environments' records from the store")
	}
	for _, rec := range recs {
		if !seen[rec.Name] {
			seen[rec.Name] = true
			out = append(out, recordStatus(rec))
		}
	}
	// Declared, and not recorded yet by any owner.
	for _, st := range states {
		declared = append(declared, st.snap.Load().rec.Name)
	}
	for _, name := range declared {
		if !seen[name] {
			seen[name] = true
			out = append(out, recordStatus(store.EnvRecord{Name: name, State: status.StateUnknown}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Environment returns the status of one environment; ok is false when it
// is unknown. In a cluster, one another replica owns is read from the
// shared store (Environments).
func (r *Reconciler) Environment(name string) (status.EnvStatus, bool) {
	st, ok := r.lookup(name)
	if r.opts.Ownership == nil || ok && r.owned(name) {
		if !ok {
			return status.EnvStatus{}, false
		}
		return r.status(st), true
	}
	rec, found, err := r.opts.Store.Env(name)
	if err != nil {
		r.log.Error().Err(err).Str("environment", name).Msg("cannot read the environment's record from the store")
	}
	if found {
		return recordStatus(rec), true
	}
	r.mu.Lock()
	_, declared := r.pending[name]
	r.mu.Unlock()
	if !ok && !declared {
		return status.EnvStatus{}, false
	}
	return recordStatus(store.EnvRecord{Name: name, State: status.StateUnknown}), true
}

// lookup returns the state of an environment seen before.
func (r *Reconciler) lookup(name string) (*envState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.envs[name]
	return st, ok
}

// History returns up to limit runs of the environment, newest first
// (limit <= 0: all of them).
func (r *Reconciler) History(name string, limit int) ([]store.Run, error) {
	return r.store.History(name, limit)
}

// status is the environment's status: its snapshot, with its hosts as
// they were last seen.
func (r *Reconciler) status(st *envState) status.EnvStatus {
	snap := st.snap.Load()
	s := snap.status
	st.hostMu.Lock()
	for name, up := range st.hostUp {
		d := snap.hostDrift[name]
		s.Hosts = append(s.Hosts, status.HostStatus{Name: name, Up: up, DriftResources: d.n, DriftSince: d.since})
	}
	st.hostMu.Unlock()
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })
	return s
}

// withoutSnapshots copies a plan without the observed states (the
// snapshots restore needs), which may hold a host's file contents: the
// diffs say what would change.
func withoutSnapshots(p *status.Plan) *status.Plan {
	out := &status.Plan{Environment: p.Environment, Commit: p.Commit}
	for _, h := range p.Hosts {
		hp := status.HostPlan{Host: h.Host, Err: h.Err}
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
func classOf(rec store.EnvRecord) string {
	switch {
	case rec.State == status.StateBlocked, rec.State == status.StateFailed:
		return status.ClassTransient
	case rec.State == status.StateRolledBack:
		return status.ClassStalled
	case rec.Gate != nil && rec.Gate.State == status.StateRejected:
		return status.ClassStalled
	case rec.Gate != nil:
		return status.ClassWaiting
	}
	return ""
}
