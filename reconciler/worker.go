package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// worker is the goroutine of one environment. Its slot holds at most one
// waiting revision: a newer one replaces a waiting one, so bursts coalesce
// and the newest revision wins. Previews coalesce per pull request, so
// that one pull request's preview never drops another's.
type worker struct {
	slot chan target

	mu       sync.Mutex
	previews map[int]target
	// previewReady has capacity one: a signal that previews wait.
	previewReady chan struct{}
	// retire (capacity one) receives the revision that no longer declares
	// the environment; the worker then marks it removed and ends.
	retire chan sources.Revision
	// wake (capacity one) asks the worker to look at its gates again: an
	// upstream changed, or a decision was taken.
	wake chan struct{}
	// retry (capacity one) says that the backoff after a transient
	// failure ran out: the rollout is tried again.
	retry chan struct{}
}

// offer puts tg in a capacity-one slot, replacing what waits there.
func offer(slot chan target, tg target) {
	for {
		select {
		case slot <- tg:
			return
		default:
		}
		select {
		case <-slot:
		default:
		}
	}
}

// Run is the daemon's loop. It first brings interrupted rollouts to an end
// (Recover), then dispatches each revision received to every environment
// it declares, one worker per environment, environments in parallel. A
// revision that does not load completely applies nothing. Run returns when
// ctx ends, after its workers and pending reports have finished.
func (r *Reconciler) Run(ctx context.Context, revs <-chan sources.Revision) error {
	if err := r.Recover(ctx); err != nil {
		// Environments whose recovery failed stay blocked: every pass
		// tries the recovery again before doing anything else.
		r.log.Error().Err(err).Msg("recovery of interrupted rollouts failed")
	}
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		r.reports.Wait()
	}()
	r.resumeTeardowns(ctx, &wg)
	r.mu.Lock()
	var known []string
	for name, st := range r.envs {
		if st.rec.Applied.Commit != "" && st.rec.State != StateRemoved {
			known = append(known, name)
		}
	}
	r.mu.Unlock()
	// Environments applied before a restart get their drift loop back at
	// once, when their revision can still be found.
	for _, name := range known {
		st := r.state(name)
		if err := r.ensureApplied(ctx, st); err != nil {
			r.log.Warn().Str("environment", name).Err(err).Msg("applied revision not available until a revision arrives")
			continue
		}
		r.worker(ctx, name, &wg)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case rev, ok := <-revs:
			if !ok {
				// No more revisions: the workers go on (drift loop,
				// Sync, Rollback) until ctx ends.
				revs = nil
				continue
			}
			r.dispatch(ctx, rev, &wg)
		}
	}
}

// load loads a revision and sets the reload metric. Its callers that keep
// the error to themselves (the source loop, rollbacks) log it with
// logInvalid; ApplyRevision and PlanRevision return it to theirs, which
// print it, so that it is said once.
// A revision that is not trusted goes through LoadUntrusted.
func (r *Reconciler) load(rev sources.Revision, trusted bool) (*config.Revision, error) {
	if isPreviewEnvRevision(rev) {
		return r.loadPreviews(rev)
	}
	load := r.opts.Load
	if !trusted && r.opts.LoadUntrusted != nil {
		load = r.opts.LoadUntrusted
	}
	cfg, err := load(rev.Dir)
	if err != nil {
		r.m.configOK.Set(0)
		return nil, fmt.Errorf("load revision %s of %s: %w", rev.Short(), rev.Source, err)
	}
	r.m.configOK.Set(1)
	return cfg, nil
}

// logInvalid logs each error of a revision that did not load.
func (r *Reconciler) logInvalid(rev sources.Revision, err error) {
	log := r.log.With().Str("source", rev.Source).Str("revision", rev.Short()).Logger()
	var list config.ErrorList
	var multi interface{ Unwrap() []error }
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			log.Error().Err(e).Msg("invalid revision")
		}
	case errors.As(err, &multi):
		for _, e := range multi.Unwrap() {
			log.Error().Err(e).Msg("invalid revision")
		}
	default:
		log.Error().Err(err).Msg("invalid revision")
	}
}

func (r *Reconciler) dispatch(ctx context.Context, rev sources.Revision, wg *sync.WaitGroup) {
	if rev.Closed {
		r.closePreviews(ctx, rev, wg)
		return
	}
	if !rev.Preview {
		r.setRefused(rev)
		if rev.Refused != "" {
			return
		}
	}
	cfg, err := r.load(rev, !rev.Preview)
	if err != nil {
		r.logInvalid(rev, err)
		return
	}
	if !rev.Preview {
		r.retireRemoved(rev, cfg)
		r.checkPromotions(rev, cfg)
		r.refreshPreviews(ctx, rev, wg)
	} else {
		r.openPreviews(ctx, rev, wg)
	}
	for _, env := range cfg.Environments {
		if env.Preview { // a template: its pull requests get environments
			continue
		}
		w := r.worker(ctx, env.Name, wg)
		if rev.Preview {
			w.offerPreview(target{rev: rev, env: env})
		} else {
			offer(w.slot, target{rev: rev, env: env})
		}
	}
}

// worker returns the environment's worker, starting it the first time.
func (r *Reconciler) worker(ctx context.Context, name string, wg *sync.WaitGroup) *worker {
	st := r.state(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.workers[name]; ok {
		return w
	}
	w := &worker{slot: make(chan target, 1), previews: map[int]target{}, previewReady: make(chan struct{}, 1),
		retire: make(chan sources.Revision, 1), wake: make(chan struct{}, 1), retry: make(chan struct{}, 1)}
	r.workers[name] = w
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			r.mu.Lock()
			if r.workers[name] == w {
				delete(r.workers, name)
			}
			r.mu.Unlock()
		}()
		r.work(ctx, st, w)
	}()
	return w
}

// interval is the environment's drift interval.
func (r *Reconciler) interval(st *envState) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range []*config.Environment{st.applied, desiredEnv(st)} {
		if e != nil && e.DriftInterval > 0 {
			return e.DriftInterval.D()
		}
	}
	return r.opts.DriftInterval
}

func desiredEnv(st *envState) *config.Environment {
	if st.desired == nil {
		return nil
	}
	return st.desired.env
}

func (r *Reconciler) work(ctx context.Context, st *envState, w *worker) {
	iv := r.interval(st)
	tk := time.NewTicker(iv)
	defer tk.Stop()
	gt := time.NewTimer(time.Hour)
	gt.Stop()
	defer gt.Stop()
	// retryAt is the retry the backoff waits for (zero: none).
	var retryAt time.Time
	stopRetry := func() {}
	defer func() { stopRetry() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			r.gatePass(ctx, st)
		case <-gt.C:
			r.gatePass(ctx, st)
		case tg := <-w.slot:
			r.onRevision(ctx, st, tg)
		case <-w.previewReady:
			for _, tg := range w.takePreviews() {
				r.preview(ctx, st, tg)
			}
		case <-tk.C:
			if r.expirePreview(ctx, st, w) {
				return
			}
			_, _ = r.pass(ctx, st, TriggerDrift, false)
		case <-w.retry:
			r.mu.Lock()
			due := !st.retryAt.IsZero()
			r.mu.Unlock()
			if due {
				_, _ = r.pass(ctx, st, TriggerRetry, false)
			}
		case rev := <-w.retire:
			r.markRemoved(st, rev)
			r.teardownPreview(ctx, st) // a preview's hosts, once nothing touches them
			return
		}
		if n := r.interval(st); n != iv {
			iv = n
			tk.Reset(iv)
		}
		r.mu.Lock()
		wake := st.wakeAt
		r.mu.Unlock()
		gt.Stop()
		if !wake.IsZero() {
			gt.Reset(max(wake.Sub(r.now()), 10*time.Millisecond))
		}
		r.mu.Lock()
		at := st.retryAt
		r.mu.Unlock()
		if !at.Equal(retryAt) {
			stopRetry()
			retryAt, stopRetry = at, func() {}
			if !at.IsZero() {
				stopRetry = r.retryAfter(ctx, w, at)
			}
		}
	}
}

// retryAfter waits on the clock until at, then asks w to try its rollout
// again; the function it returns stops the wait and returns once it has.
func (r *Reconciler) retryAfter(ctx context.Context, w *worker, at time.Time) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r.clock.Sleep(ctx, at.Sub(r.now())) != nil {
			return
		}
		select {
		case w.retry <- struct{}{}:
		default:
		}
	}()
	return func() { cancel(); <-done }
}

// retryBackoff is the backoff of the environment's retries: Options.Retry,
// capped at the drift interval unless it says otherwise.
func (r *Reconciler) retryBackoff(st *envState) kit.Backoff {
	b := r.opts.Retry
	if b.Max <= 0 {
		b.Max = r.interval(st)
	}
	if b.Initial <= 0 {
		b.Initial = min(10*time.Second, b.Max)
	}
	return b
}

// gatePass looks at a gated environment's gates again, and rolls its
// revision out when they are all open.
func (r *Reconciler) gatePass(ctx context.Context, st *envState) {
	st.op.Lock()
	defer st.op.Unlock()
	r.mu.Lock()
	removed := st.rec.State == StateRemoved
	r.mu.Unlock()
	if removed {
		return
	}
	if err := r.recoverEnv(ctx, st); err != nil {
		return
	}
	r.advance(ctx, st, TriggerRevision, false)
}

// wakeOthers asks every other environment's worker to look at its gates
// again, after something an environment promoting from name may wait for
// changed. Workers without gates do nothing with it.
func (r *Reconciler) wakeOthers(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, w := range r.workers {
		if n == name {
			continue
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// onRevision rolls a new revision out, unless its commit is quarantined.
func (r *Reconciler) onRevision(ctx context.Context, st *envState, tg target) {
	st.op.Lock()
	defer st.op.Unlock()
	r.mu.Lock()
	removed := st.rec.State == StateRemoved
	r.mu.Unlock()
	if removed { // declared again
		r.update(st, func(rec *EnvRecord) { rec.State, rec.LastError = StateUnknown, "" })
	}
	if err := r.recoverEnv(ctx, st); err != nil {
		r.log.Error().Str("environment", tg.env.Name).Err(err).Msg("interrupted rollout not recovered; revision waits")
		r.mu.Lock()
		st.desired = &tg
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	st.latest = &tg
	st.retries, st.retryAt = 0, time.Time{} // a new revision starts afresh
	if tg.env.Inventory != nil {
		st.inventoryAt = r.now() // read while loading this revision
	}
	r.mu.Unlock()
	if tg.env.Gated() {
		r.advance(ctx, st, TriggerRevision, false)
		return
	}
	r.setGate(st, nil, time.Time{}) // the environment no longer declares gates
	r.mu.Lock()
	q := st.rec.IsQuarantinedRev(tg.rev)
	if !q {
		st.desired = &tg
	}
	r.mu.Unlock()
	if q {
		r.log.Warn().Str("environment", tg.env.Name).Str("revision", tg.rev.Short()).Msg("revision quarantined after a rollback; keeping the last good revision")
		if err := r.ensureApplied(ctx, st); err != nil {
			r.log.Warn().Str("environment", tg.env.Name).Err(err).Msg("last good revision not available")
		}
		return
	}
	r.rollout(ctx, st, tg, TriggerRevision)
}

// pass is the periodic (or forced) reconcile of an environment: the
// desired revision when it is not applied yet (and not quarantined),
// otherwise a drift pass over the applied one.
func (r *Reconciler) pass(ctx context.Context, st *envState, trigger string, force bool) (Run, error) {
	st.op.Lock()
	defer st.op.Unlock()
	r.mu.Lock()
	removed := st.rec.State == StateRemoved
	r.mu.Unlock()
	if removed { // retired while this pass waited for the lock
		return Run{}, fmt.Errorf("%w: %s", status.ErrRemovedEnvironment, st.rec.Name)
	}
	if err := r.recoverEnv(ctx, st); err != nil {
		r.observeBlocked(ctx, st, trigger)
		return Run{}, err
	}
	if run, ok := r.advance(ctx, st, trigger, force); ok {
		return run, runError(run)
	}
	r.mu.Lock()
	d := st.desired
	pending := d != nil && d.rev.Commit != st.rec.Applied.Commit && !st.rec.IsQuarantinedRev(d.rev)
	backingOff := r.now().Before(st.retryAt)
	r.mu.Unlock()
	if pending && trigger == TriggerDrift && backingOff {
		// A rollout that failed waits for its retry (the backoff), not
		// for the drift ticker.
		return Run{}, nil
	}
	if pending {
		run := r.rollout(ctx, st, *d, trigger)
		return run, runError(run)
	}
	if run, ok := r.refreshInventory(ctx, st, trigger); ok {
		return run, runError(run)
	}
	if err := r.ensureApplied(ctx, st); err != nil {
		r.mu.Lock()
		held := st.rec.Gate != nil
		r.mu.Unlock()
		if held { // nothing applied yet: the first revision waits at a gate
			return Run{}, nil
		}
		return Run{}, err
	}
	return r.drift(ctx, st, trigger, r.mayCorrect(st), nil)
}

// mayCorrect reports whether drift may be corrected now: not while a
// deploy window of the environment holds changes back.
func (r *Reconciler) mayCorrect(st *envState) bool {
	r.mu.Lock()
	pol := st.policy()
	r.mu.Unlock()
	if pol != nil && len(pol.Windows) > 0 {
		v := config.CheckWindows(pol.Windows, r.now())
		return v.Open || v.Drift
	}
	return true
}

// observeBlocked is the drift pass of an environment whose rollback cannot
// finish yet: every host of the applied revision is observed (so the lost
// one shows down and the others' drift is seen), and drift is corrected
// except on the resources the rollback still has to restore. The caller
// holds st.op.
func (r *Reconciler) observeBlocked(ctx context.Context, st *envState, trigger string) {
	if ctx.Err() != nil {
		return
	}
	if err := r.ensureApplied(ctx, st); err != nil {
		r.log.Warn().Str("environment", st.rec.Name).Err(err).Msg("blocked environment not observed: no applied revision")
		return
	}
	_, entries, err := r.store.OpenJournal(st.rec.Name)
	if err != nil {
		r.log.Error().Str("environment", st.rec.Name).Err(err).Msg("cannot read the unfinished rollback")
		return
	}
	held := make(map[string]bool, len(entries))
	for _, e := range entries {
		held[e.Host+" "+e.Resource.ID()] = true
	}
	_, _ = r.drift(ctx, st, trigger, r.mayCorrect(st), held)
}

// runError is the error a caller of Sync or Rollback sees for a run.
func runError(run Run) error {
	if run.Result == ResultFailed || run.Result == ResultRolledBack {
		return fmt.Errorf("%s: %s", run.Result, run.Error)
	}
	return nil
}
