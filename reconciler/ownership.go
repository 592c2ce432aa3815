package reconciler

import (
	"context"
	"fmt"
	"sort"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// Ownership tells the reconciler of a replica in a cluster which
// environments it owns (cluster.Cluster). Without it (one daemon) the
// reconciler owns every environment.
type Ownership interface {
	// Owned returns the environment's fence when this replica owns it now.
	Owned(env string) (store.Fence, bool)
	// OwnedEnvironments lists the environments this replica owns now.
	OwnedEnvironments() []string
	// SetEnvironments hands over the declared environments to share.
	SetEnvironments(envs []string)
	// Replica is this replica's name, which the hosts' write records
	// carry.
	Replica() string
}

// ErrNotOwner is the error of a request for an environment another
// replica owns (status.ErrNotOwner, which the cluster relays).
var ErrNotOwner = status.ErrNotOwner

// owned reports whether this replica works on the environment.
func (r *Reconciler) owned(name string) bool {
	if r.opts.Ownership == nil {
		return true
	}
	_, ok := r.opts.Ownership.Owned(name)
	return ok
}

// fenceOf is the fence the environment's writes carry: the one its worker
// took the environment with. The owned store refuses a write without one.
func (r *Reconciler) fenceOf(env string) (store.Fence, bool) {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	f, ok := r.fences[env]
	return f, ok
}

// fenceChanged says whether the fence env's worker took differs from the
// cluster's current one for env.
func (r *Reconciler) fenceChanged(env string) bool {
	f, ok := r.fenceOf(env)
	cur, owned := r.opts.Ownership.Owned(env)
	return !ok || !owned || cur != f
}

// takeFenceLocked records the fence of a worker starting for env. The
// caller holds r.mu.
func (r *Reconciler) takeFenceLocked(env string) {
	if r.opts.Ownership == nil {
		return
	}
	f, ok := r.opts.Ownership.Owned(env)
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	if ok {
		r.fences[env] = f
	} else {
		delete(r.fences, env)
	}
}

// OwnershipChanged tells the reconciler that the set of environments its
// replica owns changed (cluster.Options.Changed); it does not block.
func (r *Reconciler) OwnershipChanged() { signal(r.rebalance) }

// Release stops this replica's work on an environment it gives up
// (cluster.Options.Release): it returns once its worker stopped writing,
// and any later write for it is refused.
func (r *Reconciler) Release(env string) {
	r.stopWorker(env)
	r.fenceMu.Lock()
	delete(r.fences, env)
	r.fenceMu.Unlock()
}

// rebalanceOwned starts a worker for each environment this replica gained
// (it reads the environment's record from the shared store, loads its
// applied revision and takes the newest revision seen), and stops the
// worker of each one it no longer owns.
func (r *Reconciler) rebalanceOwned(ctx context.Context) {
	if r.opts.Ownership == nil {
		return
	}
	own := map[string]bool{}
	for _, name := range r.opts.Ownership.OwnedEnvironments() {
		own[name] = true
	}
	r.mu.Lock()
	var gained, lost []string
	for name := range own {
		w, ok := r.workers[name]
		switch {
		case !ok || !w.daemon:
			gained = append(gained, name)
		case r.fenceChanged(name):
			// Taken again with a new token: the worker with the old
			// one stops, a new one starts with the cluster's token.
			lost = append(lost, name)
			gained = append(gained, name)
		}
	}
	for name := range r.workers {
		if !own[name] {
			lost = append(lost, name)
		}
	}
	r.mu.Unlock()
	for _, name := range lost {
		r.Release(name)
	}
	sort.Strings(gained)
	for _, name := range gained {
		r.send(name, request{kind: reqResume, ctx: ctx})
		r.mu.Lock()
		tg, ok := r.pending[name]
		r.mu.Unlock()
		// The previous owner may have rolled it out already.
		if !ok {
			continue
		}
		if rec, found, err := r.opts.Store.Env(name); err == nil && found && rec.Applied.Commit == tg.rev.Commit {
			continue
		}
		r.mu.Lock()
		if w := r.workers[name]; w != nil {
			offer(w.slot, tg)
		}
		r.mu.Unlock()
	}
}

// reload reads the environment's record from the shared store when its
// worker starts in a cluster: another replica may have written it since.
func (r *Reconciler) reload(st *envState) {
	if r.opts.Ownership == nil {
		return
	}
	rec, ok, err := r.opts.Store.Env(st.name())
	if err != nil {
		r.log.Error().Err(err).Str("environment", st.name()).Msg("cannot read the environment's record from the store")
		return
	}
	if ok {
		st.rec, st.applied = rec, nil
		st.publish()
	}
}

// declareOwned hands the cluster every environment the sources declare.
func (r *Reconciler) declareOwned() {
	if r.opts.Ownership == nil {
		return
	}
	r.mu.Lock()
	var names []string
	seen := map[string]bool{}
	for _, envs := range r.declared {
		for _, e := range envs {
			if !e.Preview && !seen[e.Name] {
				seen[e.Name] = true
				names = append(names, e.Name)
			}
		}
	}
	r.mu.Unlock()
	sort.Strings(names)
	r.opts.Ownership.SetEnvironments(names)
}

// notOwner is the error of a request refused here.
func notOwner(name string) error { return fmt.Errorf("%s: %w", name, ErrNotOwner) }
