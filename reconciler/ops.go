package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// known returns the state of an environment seen before.
func (r *Reconciler) known(name string) (*envState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.envs[name]
	if _, declared := r.pending[name]; !ok && declared {
		return nil, notOwner(name) // declared, owned by another replica
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", status.ErrUnknownEnvironment, name)
	}
	if rec := st.snap.Load().rec; rec.State == status.StateRemoved {
		return nil, fmt.Errorf("%w: %s (%s); declare it again to reconcile it", status.ErrRemovedEnvironment, name, rec.LastError)
	}
	return st, nil
}

// Sync reconciles an environment now: it rolls out the newest revision
// received if it is not applied yet, otherwise it runs a drift pass that
// enforces the applied revision. The error tells why the run failed.
func (r *Reconciler) Sync(ctx context.Context, name string) error { return r.sync(ctx, name, false) }

// ForceSync is Sync through a closed deploy window (only windows: never
// promotion or approval); the run is recorded as forced.
func (r *Reconciler) ForceSync(ctx context.Context, name string) error {
	return r.sync(ctx, name, true)
}

func (r *Reconciler) sync(ctx context.Context, name string, force bool) error {
	if _, err := r.known(name); err != nil {
		return err
	}
	return r.call(ctx, name, request{kind: reqSync, force: force}).err
}

// syncPass is a sync on the environment's worker.
func (r *Reconciler) syncPass(ctx context.Context, st *envState, force bool) error {
	name := st.name()
	if _, err := r.pass(ctx, st, passRequest{trigger: status.TriggerSync, force: force}); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	g := st.rec.Gate
	if g != nil && g.State == status.StateWindowClosed {
		return fmt.Errorf("sync %s: %w: revision %s is held back (%s); sync --force goes through", name, status.ErrWindowClosed, g.Revision.Short(), g.Reason)
	}
	return nil
}

// Rollback re-applies an earlier revision of the environment: the newest
// run of its history whose commit is to (or starts with to, at least 7
// characters) and that succeeded. The revision's checkout comes from the
// Revisions option, or from the folder recorded in history when that
// still exists. The commit leaves quarantine and stays the environment's
// target until a newer revision arrives.
func (r *Reconciler) Rollback(ctx context.Context, name, to string) error {
	if _, err := r.known(name); err != nil {
		return err
	}
	if len(to) < 7 {
		return fmt.Errorf("rollback %s: commit %q is too short (7 characters at least)", name, to)
	}
	return r.call(ctx, name, request{kind: reqRollback, to: to}).err
}

// rollbackTarget is the choice of a rollback's pass: the revision of the
// newest successful run of commit to, out of quarantine.
func (r *Reconciler) rollbackTarget(ctx context.Context, st *envState, to string) (*target, error) {
	name := st.name()
	runs, err := r.store.History(name, 0)
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", name, err)
	}
	var rev *sources.Revision
	for _, run := range runs {
		if strings.HasPrefix(run.Revision.Commit, to) && (run.Result == status.ResultSuccess || run.Result == status.ResultNoop) {
			rev = &run.Revision
			break
		}
	}
	if rev == nil {
		return nil, fmt.Errorf("rollback %s: no successful run of commit %s in its history", name, to)
	}
	tg, err := r.resolve(ctx, name, *rev)
	if err != nil {
		return nil, fmt.Errorf("rollback %s to %s: %w", name, rev.Short(), err)
	}
	r.m.rollbacks.WithLabelValues(name, "manual").Inc()
	r.update(st, func(rec *store.EnvRecord) {
		var keep []string
		for _, c := range rec.Quarantined {
			if c != tg.rev.Commit {
				keep = append(keep, c)
			}
		}
		rec.Quarantined = keep
		rec.QuarantinedTrees = slices.DeleteFunc(rec.QuarantinedTrees, func(t string) bool { return t == tg.rev.Tree })
	})
	st.desired = &tg
	return &tg, nil
}

// resolve loads the environment's configuration of an earlier revision.
func (r *Reconciler) resolve(ctx context.Context, name string, rev sources.Revision) (target, error) {
	rev, cfg, err := r.loadEarlier(ctx, rev)
	if err != nil {
		return target{}, err
	}
	env := cfg.Environment(name)
	if env == nil {
		return target{}, fmt.Errorf("revision %s does not declare environment %s", rev.Short(), name)
	}
	return target{rev: rev, env: env}, nil
}

// resolvedRev is one revision loaded by resolve, loaded once for every
// worker that asks for it meanwhile.
type resolvedRev struct {
	key  string
	once sync.Once
	rev  sources.Revision
	cfg  *config.Revision
	err  error
}

// loadEarlier checks out and loads an earlier revision. The newest one it
// loaded is kept and shared: after a restart, or when a replica gains
// hundreds of environments, every worker asks for the same applied
// revision at once, and each loading the whole revision (every
// environment's file) for its one environment cost a thousand
// environments a million file loads. A failed load is not kept: the
// callers that waited for it try again alone. A pull request's head is
// never shared: its preview environments' configuration depends on more
// than the commit (the previews open now, their hosts, the template, the
// author's trust), and a branch at the same commit is another
// configuration.
func (r *Reconciler) loadEarlier(ctx context.Context, rev sources.Revision) (sources.Revision, *config.Revision, error) {
	if rev.PullRequest > 0 {
		return r.checkoutAndLoad(ctx, rev)
	}
	key := rev.Source + "\x00" + rev.Commit
	r.resolveMu.Lock()
	l := r.resolved
	if l == nil || l.key != key {
		l = &resolvedRev{key: key}
		r.resolved = l
	}
	r.resolveMu.Unlock()
	ran := false
	l.once.Do(func() { ran = true; l.rev, l.cfg, l.err = r.checkoutAndLoad(ctx, rev) })
	if l.err == nil {
		return l.rev, l.cfg, nil
	}
	r.resolveMu.Lock()
	if r.resolved == l {
		r.resolved = nil
	}
	r.resolveMu.Unlock()
	if ran {
		return l.rev, nil, l.err
	}
	// The load failed for the caller that ran it (its context may have
	// ended): this one tries alone.
	return r.checkoutAndLoad(ctx, rev)
}

// checkoutAndLoad checks an earlier revision out and loads it.
func (r *Reconciler) checkoutAndLoad(ctx context.Context, rev sources.Revision) (sources.Revision, *config.Revision, error) {
	if r.opts.Revisions != nil {
		got, err := r.opts.Revisions.Checkout(ctx, rev)
		if err != nil {
			return rev, nil, fmt.Errorf("check out %s: %w", rev.Short(), err)
		}
		rev = got
	} else if _, err := os.Stat(rev.Dir); err != nil {
		return rev, nil, fmt.Errorf("checkout of %s is gone and no revision lookup is configured: %w", rev.Short(), err)
	}
	cfg, err := r.load(rev, true)
	if err != nil {
		r.logInvalid(rev, err)
		return rev, nil, err
	}
	return rev, cfg, nil
}

// ensureApplied loads the applied revision's configuration when it is not
// in memory (after a restart).
func (r *Reconciler) ensureApplied(ctx context.Context, st *envState) error {
	have, rev, name := st.applied != nil, st.rec.Applied, st.rec.Name
	if have {
		return nil
	}
	if rev.Commit == "" {
		return fmt.Errorf("environment %s has no applied revision", name)
	}
	tg, err := r.resolve(ctx, name, rev)
	if err != nil {
		return err
	}
	st.applied = tg.env
	return nil
}

// ApplyRevision loads a revision and rolls it out to every environment it
// declares, one after the other, and returns their runs. It is the
// one-shot `driftless apply`; the daemon uses Run. Quarantine is not
// consulted: applying by hand is the operator's decision.
func (r *Reconciler) ApplyRevision(ctx context.Context, rev sources.Revision) ([]store.Run, error) {
	if rev.Preview {
		return nil, errors.New("apply: a preview revision is never applied")
	}
	cfg, err := r.load(rev, true)
	if err != nil {
		return nil, err
	}
	var runs []store.Run
	var errs []error
	for _, env := range cfg.Environments {
		rp := r.call(ctx, env.Name, request{kind: reqApply, tg: target{rev: rev, env: env}})
		if rp.run.Environment == "" { // not rolled out: recovery failed, or ctx ended
			errs = append(errs, rp.err)
			continue
		}
		runs = append(runs, rp.run)
		if rp.err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", env.Name, rp.err))
		}
	}
	return runs, errors.Join(errs...)
}

// PlanRevision loads a revision and plans every environment it declares,
// changing nothing (`driftless plan`).
func (r *Reconciler) PlanRevision(ctx context.Context, rev sources.Revision) ([]*status.Plan, error) {
	cfg, err := r.load(rev, false)
	if err != nil {
		return nil, err
	}
	var out []*status.Plan
	for _, env := range cfg.Environments {
		prev := r.state(env.Name).snap.Load().applied
		p, _ := r.plan(ctx, target{rev: rev, env: env}, prev)
		// The snapshots hold what the hosts have (secrets among it); the
		// diffs say what would change.
		out = append(out, withoutSnapshots(p))
	}
	return out, nil
}
