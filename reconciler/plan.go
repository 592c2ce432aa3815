package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// hostRun is one host during a run: its transport, its plan, and the
// resources to change in the order they are applied.
type hostRun struct {
	host *config.Host
	t    targets.Transport
	plan status.HostPlan
	// reached is true when the host answered the observation.
	reached bool
	// order lists the resources to change: declared ones with a change,
	// ordered by requires, then pruned ones.
	order   []config.Resource
	changes map[string]targets.Change
	// byID finds a declared or pruned resource of the host.
	byID map[string]config.Resource
	// pruned holds the IDs of resources removed because the revision no
	// longer declares them.
	pruned map[string]bool
	// log carries the environment, revision and host of every line.
	log zerolog.Logger
	// applied lists the changes applyHost made, for the run's record.
	applied []store.ResourceChange
	// batch is the host's rollout batch, from 1 of batches (0 outside a
	// rollout's batches), for progress events.
	batch, batches int
}

// failed reports whether the host could not be planned completely.
func (h *hostRun) failed() bool { return h.plan.Err != "" }

// changed reports whether the host has anything to apply.
func (h *hostRun) changed() bool { return len(h.order) > 0 }

// closeHosts closes every transport of a run.
func closeHosts(hosts []*hostRun) {
	for _, h := range hosts {
		if h.t != nil {
			_ = h.t.Close()
		}
	}
}

// planMode says whose revision a plan observes for.
type planMode int

const (
	// planTrusted plans a revision of a followed branch (a rollout, a drift
	// pass): guards run, and whether each host answered becomes the
	// environment's driftless_host_up and host status.
	planTrusted planMode = iota
	// planPreview plans a revision not yet merged (a pull request,
	// `driftless plan`): observation only reads, nothing the revision
	// declares runs (targets.PlanPreview), and nothing is recorded, since
	// its hosts are not the environment's yet (a pull request may add some).
	planPreview
)

// planEnv observes every host of env (at most HostParallelism at once over
// all environments) and diffs it
// against env. With prune, resources that prev declared on a host and env
// no longer does are planned for removal. The caller closes the transports.
func (r *Reconciler) planEnv(ctx context.Context, env, prev *config.Environment, prune bool, mode planMode, log zerolog.Logger) []*hostRun {
	out := make([]*hostRun, len(env.Hosts))
	var wg sync.WaitGroup
	for i, h := range env.Hosts {
		var pruned []config.Resource
		if prune && prev != nil {
			pruned = prunedResources(prev, h)
		}
		wg.Add(1)
		r.hostSlots <- struct{}{}
		go func(i int, h *config.Host) {
			defer wg.Done()
			defer func() { <-r.hostSlots }()
			out[i] = r.planHost(ctx, env.Name, h, pruned, mode, log.With().Str("host", h.Name).Logger())
		}(i, h)
	}
	wg.Wait()
	return out
}

// keepHosts drops the host_up series and host statuses of hosts env no
// longer declares. The series of declared hosts stay: they change only
// when an observation (or a recovery's connection) says a host's state
// changed, so an alert on driftless_host_up sees one unbroken series.
// Previews do not call it: their hosts are not the environment's yet.
func (r *Reconciler) keepHosts(env *config.Environment) {
	declared := make(map[string]bool, len(env.Hosts))
	for _, h := range env.Hosts {
		declared[h.Name] = true
	}
	var gone []string
	if st, ok := r.lookup(env.Name); ok {
		st.hostMu.Lock()
		for name := range st.hostUp {
			if !declared[name] {
				gone = append(gone, name)
				delete(st.hostUp, name)
			}
		}
		st.hostMu.Unlock()
	}
	for _, name := range gone {
		r.m.hostUp.DeleteLabelValues(env.Name, name)
	}
}

// setHostUp records whether a host answered: its driftless_host_up series
// and its host status.
func (r *Reconciler) setHostUp(env, host string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	r.m.hostUp.WithLabelValues(env, host).Set(v)
	if st, ok := r.lookup(env); ok {
		st.hostMu.Lock()
		st.hostUp[host] = up
		st.hostMu.Unlock()
	}
}

// prunedResources returns the resources prev declared on the host named
// like h that h no longer declares, in prev's order.
func prunedResources(prev *config.Environment, h *config.Host) []config.Resource {
	old := hostOf(prev, h.Name)
	if old == nil {
		return nil
	}
	keep := make(map[string]bool, len(h.Resources))
	for _, res := range h.Resources {
		keep[res.ID()] = true
	}
	var out []config.Resource
	for _, res := range old.Resources {
		if !keep[res.ID()] {
			out = append(out, res)
		}
	}
	return out
}

func (r *Reconciler) planHost(ctx context.Context, env string, h *config.Host, pruned []config.Resource, mode planMode, log zerolog.Logger) *hostRun {
	hr := &hostRun{host: h, plan: status.HostPlan{Host: h.Name}, changes: map[string]targets.Change{}, byID: map[string]config.Resource{}, log: log}
	start := r.now()
	if mode == planTrusted {
		r.emit(env, hr, status.StepObserve, status.StatusStarted, 0)
	}
	defer func() {
		if mode == planTrusted {
			r.setHostUp(env, h.Name, hr.reached)
			r.emit(env, hr, status.StepObserve, statusOf(!hr.failed()), len(hr.order))
		}
		log.Debug().Bool("reached", hr.reached).Int("changes", len(hr.order)).Dur("duration_ms", r.now().Sub(start)).Msg("host observed")
	}()
	order, err := applyOrder(h.Resources)
	if err != nil {
		hr.plan.Err = fmt.Sprintf("plan %s: %v", h.Name, err)
		return hr
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.HostTimeout)
	defer cancel()
	t, err := r.opts.Dialer.Transport(ctx, h)
	if err != nil {
		hr.plan.Err = fmt.Sprintf("connect to %s: %v", h.Name, hostErr(h, err))
		return hr
	}
	hr.t = t
	all := append(append([]config.Resource(nil), h.Resources...), pruned...)
	for _, res := range all {
		hr.byID[res.ID()] = res
	}
	changes, err := safePlan(ctx, t, r.opts.Drivers, all, mode)
	hr.reached = changes != nil
	if err != nil {
		hr.plan.Err = fmt.Sprintf("observe %s: %v", h.Name, hostErr(h, err))
	}
	isPruned := make(map[string]bool, len(pruned))
	for _, res := range pruned {
		isPruned[res.ID()] = true
	}
	hr.pruned = isPruned
	for _, c := range changes {
		if isPruned[c.ID] {
			c.Action, c.Diff = targets.NoChange, ""
			if c.Before.Present {
				c.Action, c.Diff = targets.Delete, "pruned: no longer declared"
			}
		}
		res := hr.byID[c.ID]
		if res.Undecrypted {
			// Its content is unknown (a preview decrypts nothing): it
			// may change, and is never applied.
			if mode == planTrusted {
				hr.plan.Err = fmt.Sprintf("plan %s: %s was not decrypted", h.Name, res.ID())
			}
			c.Action, c.Diff = targets.Update, undecryptedDiff
			if !c.Before.Present {
				c.Action = targets.Create
			}
		}
		if c.Diff != "" && res.IsSecret() {
			c.Diff = r.secretDiff(res, c)
		}
		hr.changes[c.ID] = c
		hr.plan.Changes = append(hr.plan.Changes, c)
	}
	if hr.failed() {
		return hr
	}
	for _, res := range order {
		if c, ok := hr.changes[res.ID()]; ok && c.Action != targets.NoChange {
			hr.order = append(hr.order, res)
		}
	}
	// Pruned resources go last and in reverse declared order, so that what
	// depended on a resource is removed before it.
	for i := len(pruned) - 1; i >= 0; i-- {
		if hr.changes[pruned[i].ID()].Action == targets.Delete {
			hr.order = append(hr.order, pruned[i])
		}
	}
	return hr
}

// safePlan is targets.PlanHost, or targets.PlanPreview for a preview, with
// a driver's panic turned into an error.
func safePlan(ctx context.Context, t targets.Transport, drivers map[string]targets.Driver, rs []config.Resource, mode planMode) (changes []targets.Change, err error) {
	defer func() {
		if p := recover(); p != nil {
			changes, err = nil, fmt.Errorf("driver panicked: %v", p)
		}
	}()
	if mode == planPreview {
		return targets.PlanPreview(ctx, t, drivers, rs)
	}
	return targets.PlanHost(ctx, t, drivers, rs)
}

// applyOrder orders resources so that each comes after the ones it
// requires, keeping the declared order wherever requires allows. A
// requirement that is not declared, or a cycle, is an error.
func applyOrder(rs []config.Resource) ([]config.Resource, error) {
	idx := make(map[string]int, len(rs))
	for i, res := range rs {
		idx[res.ID()] = i
	}
	indeg := make([]int, len(rs))
	dependents := make([][]int, len(rs))
	for i, res := range rs {
		for _, req := range res.Requires {
			j, ok := idx[req]
			if !ok {
				return nil, fmt.Errorf("%s requires %s, which is not declared on this host", res.ID(), req)
			}
			indeg[i]++
			dependents[j] = append(dependents[j], i)
		}
	}
	done := make([]bool, len(rs))
	out := make([]config.Resource, 0, len(rs))
	for len(out) < len(rs) {
		next := -1
		for i := range rs {
			if !done[i] && indeg[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var cyc []string
			for i := range rs {
				if !done[i] {
					cyc = append(cyc, rs[i].ID())
				}
			}
			sort.Strings(cyc)
			return nil, fmt.Errorf("requires form a cycle among %s", strings.Join(cyc, ", "))
		}
		done[next] = true
		out = append(out, rs[next])
		for _, d := range dependents[next] {
			indeg[d]--
		}
	}
	return out, nil
}
