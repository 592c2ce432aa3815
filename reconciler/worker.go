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
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// worker is the goroutine that owns one environment: it is the only one
// that works on it (recovery, rollouts, drift passes, gates, decisions,
// retirement), one request after the other. Revisions wait in a slot that
// holds at most one: a newer one replaces a waiting one, so bursts coalesce
// and the newest revision wins. Previews coalesce per pull request, so that
// one pull request's preview never drops another's. Other requests
// (sync, rollback, decisions, apply, recovery, retirement) wait in a queue,
// in the order they came.
//
// A worker Run starts (daemon) also keeps the environment's timers: drift
// ticks, its gates' next look, the retry of a failed rollout. One started
// outside Run (a sync or an apply of the command line) serves its queue and
// ends. A worker starts only once the one before it for the environment
// (retired, or replaced) has stopped, so two never work on one environment.
type worker struct {
	name   string
	st     *envState
	daemon bool
	ctx    context.Context
	cancel context.CancelFunc
	prev   *worker
	done   chan struct{}

	slot chan target

	mu       sync.Mutex
	queue    []request
	previews map[int]target
	// ready and previewReady have capacity one: a signal that requests,
	// or previews, wait.
	ready        chan struct{}
	previewReady chan struct{}
	// wake (capacity one) asks the worker to look at its gates again: an
	// upstream changed, or a decision was taken.
	wake chan struct{}
	// retry (capacity one) says that the backoff after a transient
	// failure ran out: the rollout is tried again.
	retry chan struct{}
}

// requestKind is what a request asks of an environment's worker.
type requestKind int

const (
	// reqSync is Sync and ForceSync (force).
	reqSync requestKind = iota
	// reqRollback rolls back to the successful run of commit to.
	reqRollback
	// reqApply rolls tg out (ApplyRevision).
	reqApply
	// reqDecide records an approval or a rejection (Decide, by the API).
	reqDecide
	// reqComment records a decision taken by a pull request comment.
	reqComment
	// reqRecover rolls back an interrupted rollout (Recover).
	reqRecover
	// reqRetire marks the environment removed and ends the worker; with
	// end, it ends a preview environment (unless it ended already) and
	// destroys its hosts.
	reqRetire
	// reqResume loads the applied revision again after a restart.
	reqResume
	// reqRefused tells the worker its source refused (or accepted again)
	// its head, rev.
	reqRefused
	// reqPromotion tells the worker its promotion error changed (note).
	reqPromotion
	// reqPreview opens or updates a preview environment (tg.env is its
	// template; nil keeps the one it has) at tg.rev, its pull request's head.
	reqPreview
)

// request is one request to an environment's worker. Its work runs with
// ctx, the caller's context (ended too when the worker stops); a caller
// that waits for the answer reads reply.
type request struct {
	kind  requestKind
	ctx   context.Context
	force bool
	// to is the commit of a rollback, or the revision named by a decision.
	to string
	tg target
	d  store.Decision
	// comment is a decision taken by a pull request comment.
	comment *commentDecision
	rev     sources.Revision
	end     string
	note    string
	// reply receives the answer (capacity one; nil when nobody waits);
	// started is closed when the worker takes the request up.
	reply   chan reply
	started chan struct{}
}

// reply is a worker's answer to a request.
type reply struct {
	run store.Run
	dec store.Decision
	err error
}

// errWorkerStopped answers the requests still queued when a worker stops.
var errWorkerStopped = errors.New("the environment's worker stopped (the daemon is stopping)")

// runScope is the context and wait group of the running daemon loop: the
// workers it owns run in them.
type runScope struct {
	ctx context.Context
	wg  *sync.WaitGroup
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

// signal sends on a capacity-one channel unless a signal waits already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
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
	r.mu.Lock()
	r.run = &runScope{ctx: ctx, wg: &wg}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.run = nil
		r.mu.Unlock()
		wg.Wait()
		r.reports.Wait()
	}()
	r.resumeTeardowns()
	if r.opts.Ownership != nil {
		// A replica resumes what it owns, as it gains it.
		r.rebalanceOwned(ctx)
	} else {
		// Environments applied before a restart get their drift loop
		// back at once, when their revision can still be found.
		for _, name := range r.appliedEnvs() {
			r.send(name, request{kind: reqResume, ctx: ctx})
		}
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
			r.dispatch(ctx, rev)
		case <-r.rebalance:
			r.rebalanceOwned(ctx)
		}
	}
}

// appliedEnvs names the environments with an applied revision that are
// not removed.
func (r *Reconciler) appliedEnvs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name, st := range r.envs {
		if rec := st.snap.Load().rec; rec.Applied.Commit != "" && rec.State != status.StateRemoved {
			out = append(out, name)
		}
	}
	return out
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

func (r *Reconciler) dispatch(ctx context.Context, rev sources.Revision) {
	if rev.Closed {
		r.closePreviews(rev)
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
		r.declareOwned()
		r.refreshPreviews(ctx, rev)
	} else {
		r.openPreviews(ctx, rev)
	}
	for _, env := range cfg.Environments {
		if env.Preview { // a template: its pull requests get environments
			continue
		}
		r.mu.Lock()
		if r.opts.Ownership != nil && !rev.Preview {
			r.pending[env.Name] = target{rev: rev, env: env}
		}
		if !r.owned(env.Name) {
			r.mu.Unlock()
			continue
		}
		w := r.workerLocked(env.Name)
		r.mu.Unlock()
		if rev.Preview {
			w.offerPreview(target{rev: rev, env: env})
		} else {
			offer(w.slot, target{rev: rev, env: env})
		}
	}
}

// call sends req to the environment's worker and waits for its answer.
// When ctx ends while the request waits in the queue, call returns at once
// (the request then does nothing when its turn comes); once the worker
// has started it, its work ends with ctx and call returns what it did.
func (r *Reconciler) call(ctx context.Context, name string, req request) reply {
	req.ctx, req.reply, req.started = ctx, make(chan reply, 1), make(chan struct{})
	r.send(name, req)
	select {
	case rp := <-req.reply:
		return rp
	case <-ctx.Done():
	}
	select {
	case <-req.started:
		return <-req.reply
	default:
		return reply{err: ctx.Err()}
	}
}

// send queues req on the environment's worker, starting it when it has none.
func (r *Reconciler) send(name string, req request) {
	if !r.owned(name) {
		answer(req, reply{err: notOwner(name)})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workerLocked(name).push(req)
}

// workerLocked returns the environment's worker, starting it when there is
// none, or when the one there is no daemon worker and Run is running. The
// caller holds r.mu.
func (r *Reconciler) workerLocked(name string) *worker {
	w, ok := r.workers[name]
	if ok && (w.daemon || r.run == nil) {
		return w
	}
	return r.startLocked(name)
}

// startLocked starts a worker for the environment, the daemon's when Run
// runs. It waits for the environment's previous worker (detached from the
// map: it serves what it has queued and ends) to stop before it touches
// anything. The caller holds r.mu.
func (r *Reconciler) startLocked(name string) *worker {
	st := r.stateLocked(name)
	w := &worker{name: name, st: st, prev: st.owner, done: make(chan struct{}), slot: make(chan target, 1),
		previews: map[int]target{}, ready: make(chan struct{}, 1), previewReady: make(chan struct{}, 1),
		wake: make(chan struct{}, 1), retry: make(chan struct{}, 1)}
	parent := context.Background()
	var wg *sync.WaitGroup
	if r.run != nil {
		w.daemon, parent, wg = true, r.run.ctx, r.run.wg
		wg.Add(1)
	}
	w.ctx, w.cancel = context.WithCancel(parent)
	r.workers[name], st.owner = w, w
	r.takeFenceLocked(name)
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		r.work(w)
	}()
	return w
}

// detachLocked takes w out of the map, so that the next request for its
// environment starts a new worker (which waits for w to stop). The caller
// holds r.mu.
func (r *Reconciler) detachLocked(w *worker) {
	if r.workers[w.name] == w {
		delete(r.workers, w.name)
	}
}

// stopWorker stops the environment's worker, if it has one: its current
// work is cancelled (a rollout is left to the recovery, as at a shutdown),
// and stopWorker returns once it has stopped writing anything. The next
// request starts a new worker, whose first pass recovers.
func (r *Reconciler) stopWorker(name string) {
	r.mu.Lock()
	w := r.workers[name]
	if w != nil {
		r.detachLocked(w)
	}
	r.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// push queues a request. The caller holds r.mu.
func (w *worker) push(req request) {
	w.mu.Lock()
	w.queue = append(w.queue, req)
	w.mu.Unlock()
	signal(w.ready)
}

// take returns the queued requests.
func (w *worker) take() []request {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// exit detaches the worker and answers what is still queued; idle is true
// when it ends only if nothing is queued (a worker outside Run with nothing
// left to do). It reports whether the worker may end.
func (r *Reconciler) exit(w *worker, idle bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.mu.Lock()
	left := w.queue
	if idle && len(left) > 0 {
		w.mu.Unlock()
		return false
	}
	w.queue = nil
	w.mu.Unlock()
	r.detachLocked(w)
	for _, req := range left {
		answer(req, reply{err: errWorkerStopped})
	}
	return true
}

// answer gives a request its reply, when someone waits for it.
func answer(req request, rp reply) {
	if req.reply != nil {
		req.reply <- rp
	}
}

// interval is the environment's drift interval.
func (r *Reconciler) interval(st *envState) time.Duration {
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

// work is the worker's loop. Every request, timer and revision is handled
// here, one at a time; a worker outside Run ends once its queue is empty.
func (r *Reconciler) work(w *worker) {
	defer close(w.done)
	defer w.cancel()
	if w.prev != nil {
		<-w.prev.done // the environment's previous owner stopped writing
		w.prev = nil
	}
	r.reload(w.st)
	ctx, st := w.ctx, w.st
	// serve handles the queued requests; true when the worker ends.
	serve := func() bool {
		for _, req := range w.take() {
			end := r.handle(ctx, w, req)
			st.publish()
			if end {
				return true
			}
		}
		return false
	}
	if !w.daemon {
		for {
			if serve() {
				r.exit(w, false)
				return
			}
			if r.exit(w, true) {
				return
			}
		}
	}
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
	defer r.exit(w, false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.ready:
			if serve() {
				return
			}
		case <-w.wake:
			// Without gates there is nothing to look at again, unless
			// the environment's own journal is still open: its recovery
			// is tried again (a host it must restore may be back).
			if st.latest != nil && st.latest.env.Gated() || st.journalOpen {
				open := st.journalOpen
				_, _ = r.pass(ctx, st, passRequest{trigger: status.TriggerRevision, gatesOnly: true})
				if d := st.desired; open && !st.journalOpen && d != nil && d.rev.Commit != st.rec.Applied.Commit {
					// Recovered: the revision that waited for it is
					// rolled out now (a retry), not at the next drift
					// tick or after the backoff of the interrupted run.
					st.retryAt = r.now()
				}
			}
		case <-gt.C:
			_, _ = r.pass(ctx, st, passRequest{trigger: status.TriggerRevision, gatesOnly: true})
		case tg := <-w.slot:
			// Requests sent before the revision first: what they say (a
			// refusal, a promotion error) holds for it.
			if serve() {
				return
			}
			_, _ = r.pass(ctx, st, passRequest{trigger: status.TriggerRevision, rev: &tg})
		case <-w.previewReady:
			for _, tg := range w.takePreviews() {
				r.preview(ctx, st, tg)
			}
		case <-tk.C:
			if r.expirePreview(ctx, w) {
				st.publish()
				return
			}
			_, _ = r.pass(ctx, st, passRequest{trigger: status.TriggerDrift})
		case <-w.retry:
			due := !st.retryAt.IsZero()
			if due {
				_, _ = r.pass(ctx, st, passRequest{trigger: status.TriggerRetry})
			}
		}
		// Readers see the environment as this step left it.
		st.publish()
		if n := r.interval(st); n != iv {
			iv = n
			tk.Reset(iv)
		}
		wake, at := st.wakeAt, st.retryAt
		gt.Stop()
		if !wake.IsZero() {
			gt.Reset(max(wake.Sub(r.now()), 10*time.Millisecond))
		}
		if !at.Equal(retryAt) {
			stopRetry()
			retryAt, stopRetry = at, func() {}
			if !at.IsZero() {
				stopRetry = r.retryAfter(ctx, w, at)
			}
		}
	}
}

// handle does one request on the worker and answers it; it reports whether
// the worker ends (the environment was retired). A request whose caller
// gave up does nothing.
func (r *Reconciler) handle(wctx context.Context, w *worker, req request) (end bool) {
	if req.ctx == nil {
		req.ctx = wctx
	}
	if req.started != nil {
		close(req.started)
	}
	if err := req.ctx.Err(); err != nil {
		answer(req, reply{err: err})
		return false
	}
	if wctx.Err() != nil {
		answer(req, reply{err: errWorkerStopped})
		return false
	}
	// The work ends with the caller's context, or when the worker stops.
	ctx, cancel := context.WithCancel(req.ctx)
	defer cancel()
	defer context.AfterFunc(wctx, cancel)()
	st := w.st
	var rp reply
	switch req.kind {
	case reqSync:
		rp.err = r.syncPass(ctx, st, req.force)
	case reqRollback:
		rp.run, rp.err = r.pass(ctx, st, passRequest{trigger: status.TriggerRollback, rollback: req.to})
		if rp.err != nil && rp.run.Environment != "" {
			rp.err = fmt.Errorf("rollback %s to %s: %w", st.name(), rp.run.Revision.Short(), rp.err)
		}
	case reqApply:
		rp.run, rp.err = r.pass(ctx, st, passRequest{trigger: status.TriggerRevision, apply: &req.tg})
	case reqDecide:
		rp.dec, rp.err = r.decide(st, req.to, req.d)
	case reqComment:
		rp.err = r.decideByComment(st, req.comment)
	case reqRecover:
		rp.err = r.recoverEnv(ctx, st)
	case reqResume:
		if err := r.ensureApplied(ctx, st); err != nil {
			r.log.Warn().Str("environment", st.name()).Err(err).Msg("applied revision not available until a revision arrives")
		}
	case reqPreview:
		if req.tg.env != nil {
			r.openPreview(ctx, w, req.tg.env, req.tg.rev)
		} else {
			r.offerPreviewEnv(ctx, w, req.tg.rev)
		}
	case reqRefused:
		r.refusedNotice(st, req.rev)
	case reqPromotion:
		r.promotionNotice(st, req.rev, req.note)
	case reqRetire:
		answer(req, rp)
		return r.retireNow(wctx, w, req)
	}
	answer(req, rp)
	if req.kind == reqDecide || req.kind == reqComment || req.kind == reqPromotion {
		if w.daemon && rp.err == nil { // the gates may be open now
			_, _ = r.pass(wctx, st, passRequest{trigger: status.TriggerRevision, gatesOnly: true})
		}
	}
	return false
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
		signal(w.retry)
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

// wakeOthers asks every other environment's worker to look at its gates
// again, after something an environment promoting from name may wait for
// changed. Workers without gates do nothing with it.
func (r *Reconciler) wakeOthers(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, w := range r.workers {
		if n != name {
			signal(w.wake)
		}
	}
}

// passRequest says what a pass is for: a new revision (rev), a target the
// operator chose (apply, or the commit of a rollback), or the environment
// as it is (a sync, a drift tick, a retry, a look at the gates).
type passRequest struct {
	trigger string
	force   bool
	rev     *target
	apply   *target
	// rollback is the commit (or its prefix) to roll back to.
	rollback string
	// gatesOnly looks at the gates and stops there (a wake, a decision).
	gatesOnly bool
}

// pass is the one ordered pass of a worker, whatever asked for it:
// recover an open journal, choose the target revision (the desired one,
// or the last good when the desired is quarantined), then roll it out, or
// correct the drift of the applied one. Each run is recorded by finish,
// which rollout, drift and the recovery defer.
func (r *Reconciler) pass(ctx context.Context, st *envState, p passRequest) (store.Run, error) {
	removed := st.rec.State == status.StateRemoved
	switch {
	case removed && p.rev != nil: // declared again
		r.update(st, func(rec *store.EnvRecord) { rec.State, rec.LastError = status.StateUnknown, "" })
	case removed && p.gatesOnly:
		return store.Run{}, nil
	case removed && p.apply == nil: // retired while this request waited
		return store.Run{}, fmt.Errorf("%w: %s", status.ErrRemovedEnvironment, st.name())
	}
	if err := r.recoverEnv(ctx, st); err != nil {
		switch {
		case p.rev != nil:
			r.log.Error().Str("environment", st.name()).Err(err).Msg("interrupted rollout not recovered; revision waits")
			st.desired = p.rev
			return store.Run{}, nil
		case p.rollback != "":
			return store.Run{}, fmt.Errorf("rollback %s: %w", st.name(), err)
		case p.trigger == status.TriggerSync || p.trigger == status.TriggerDrift || p.trigger == status.TriggerRetry:
			r.observeBlocked(ctx, st, p.trigger)
		}
		return store.Run{}, err
	}
	tg, run, done, err := r.choose(ctx, st, p)
	switch {
	case done:
		return run, err
	case tg != nil:
		run := r.rollout(ctx, st, *tg, p.trigger)
		return run, runError(run)
	}
	return r.correct(ctx, st, p.trigger)
}

// choose is the pass's choice of a target: the revision to roll out (nil
// for none: the applied one is kept and its drift corrected), or the run
// that ended the pass already (done: a revision through its gates, one
// held at them, a quarantined one).
func (r *Reconciler) choose(ctx context.Context, st *envState, p passRequest) (tg *target, run store.Run, done bool, err error) {
	switch {
	case p.apply != nil:
		// Applying by hand is the operator's decision: no quarantine.
		st.desired = p.apply
		return p.apply, store.Run{}, false, nil
	case p.rollback != "":
		tg, err := r.rollbackTarget(ctx, st, p.rollback)
		if err != nil {
			return nil, store.Run{}, true, err
		}
		return tg, store.Run{}, false, nil
	case p.rev != nil:
		tg, run, done, err := r.chooseRevision(ctx, st, *p.rev)
		if tg != nil && r.behind(st, tg) {
			return nil, store.Run{}, true, nil
		}
		return tg, run, done, err
	}
	if run, ok := r.advance(ctx, st, p.trigger, p.force); ok {
		return nil, run, true, runError(run)
	}
	if p.gatesOnly {
		return nil, store.Run{}, true, nil
	}
	d := st.desired
	pending := d != nil && d.rev.Commit != st.rec.Applied.Commit && !st.rec.IsQuarantinedRev(d.rev)
	backingOff := r.now().Before(st.retryAt)
	if pending && p.trigger == status.TriggerDrift && backingOff {
		// A rollout that failed waits for its retry (the backoff), not
		// for the drift ticker.
		return nil, store.Run{}, true, nil
	}
	if pending {
		if r.behind(st, d) {
			return nil, store.Run{}, true, nil
		}
		return d, store.Run{}, false, nil
	}
	st.behindSince = time.Time{}
	return nil, store.Run{}, false, nil
}

// staleViewWait bounds how long a worker waits for its source to catch
// up with the revision another replica applied (behind).
const staleViewWait = 30 * time.Second

// behind tells whether tg, about to be rolled out, is older than the
// revision the shared record says is applied: in a cluster, a replica that
// takes an environment over may know the source only as it was a while
// ago (it was paused, or its poll is behind) while the previous owner
// applied a revision received later. The worker does not roll the older
// revision out over the newer one: it waits for its source, which fetches
// at once a revision another replica relays, with a retry due after at
// most staleViewWait (the replicas' clocks may differ), when it goes on.
// Which is newer is told by when each was received (Revision.Time), not
// by the commits: a revert pushed later is newer.
func (r *Reconciler) behind(st *envState, tg *target) bool {
	a := st.rec.Applied
	if r.opts.Ownership == nil || a.Commit == "" || a.Commit == tg.rev.Commit || !a.Time.After(tg.rev.Time) {
		st.behindSince = time.Time{}
		return false
	}
	now := r.now()
	if st.behindSince.IsZero() {
		st.behindSince = now
		r.log.Warn().Str("environment", st.name()).Str("revision", tg.rev.Short()).Str("applied", a.Short()).
			Msg("this replica's view of the source is older than the revision applied by the previous owner; waiting for the source before rolling out")
	}
	until := st.behindSince.Add(staleViewWait)
	if !now.Before(until) {
		st.behindSince = time.Time{}
		return false
	}
	if st.retryAt.IsZero() || st.retryAt.After(until) {
		st.retryAt = until
	}
	return true
}

// chooseRevision takes a new revision of the environment's source: it
// goes through the gates of a gated environment, and becomes the desired
// revision unless its commit is quarantined (the last good one stays).
func (r *Reconciler) chooseRevision(ctx context.Context, st *envState, tg target) (*target, store.Run, bool, error) {
	st.latest = &tg
	st.retries, st.retryAt = 0, time.Time{} // a new revision starts afresh
	if tg.env.Inventory != nil {
		st.inventoryAt = r.now() // read while loading this revision
	}
	if tg.env.Gated() {
		run, _ := r.advance(ctx, st, status.TriggerRevision, false)
		return nil, run, true, runError(run)
	}
	r.setGate(st, nil, time.Time{}) // the environment no longer declares gates
	q := st.rec.IsQuarantinedRev(tg.rev)
	if !q {
		st.desired = &tg
	}
	if q {
		r.log.Warn().Str("environment", tg.env.Name).Str("revision", tg.rev.Short()).Msg("revision quarantined after a rollback; keeping the last good revision")
		if err := r.ensureApplied(ctx, st); err != nil {
			r.log.Warn().Str("environment", tg.env.Name).Err(err).Msg("last good revision not available")
		}
		return nil, store.Run{}, true, nil
	}
	return &tg, store.Run{}, false, nil
}

// correct is the pass over the applied revision: an inventory that
// changed rolls out again, otherwise drift is corrected.
func (r *Reconciler) correct(ctx context.Context, st *envState, trigger string) (store.Run, error) {
	if run, ok := r.refreshInventory(ctx, st, trigger); ok {
		return run, runError(run)
	}
	if err := r.ensureApplied(ctx, st); err != nil {
		held := st.rec.Gate != nil
		if held { // nothing applied yet: the first revision waits at a gate
			return store.Run{}, nil
		}
		return store.Run{}, err
	}
	return r.drift(ctx, st, trigger, r.mayCorrect(st), nil)
}

// mayCorrect reports whether drift may be corrected now: not while a
// deploy window of the environment holds changes back.
func (r *Reconciler) mayCorrect(st *envState) bool {
	pol := st.policy()
	if pol != nil && len(pol.Windows) > 0 {
		v := config.CheckWindows(pol.Windows, r.now())
		return v.Open || v.Drift
	}
	return true
}

// observeBlocked is the drift pass of an environment whose rollback cannot
// finish yet: every host of the applied revision is observed (so the lost
// one shows down and the others' drift is seen), and drift is corrected
// except on the resources the rollback still has to restore.
func (r *Reconciler) observeBlocked(ctx context.Context, st *envState, trigger string) {
	if ctx.Err() != nil {
		return
	}
	if err := r.ensureApplied(ctx, st); err != nil {
		r.log.Warn().Str("environment", st.name()).Err(err).Msg("blocked environment not observed: no applied revision")
		return
	}
	_, entries, err := r.store.OpenJournal(st.name())
	if err != nil {
		r.log.Error().Str("environment", st.name()).Err(err).Msg("cannot read the unfinished rollback")
		return
	}
	held := make(map[string]bool, len(entries))
	for _, e := range entries {
		held[e.Host+" "+e.Resource.ID()] = true
	}
	_, _ = r.drift(ctx, st, trigger, r.mayCorrect(st), held)
}

// runError is the error a caller of Sync or Rollback sees for a run.
func runError(run store.Run) error {
	if run.Result == status.ResultFailed || run.Result == status.ResultRolledBack {
		return fmt.Errorf("%s: %s", run.Result, run.Error)
	}
	return nil
}
