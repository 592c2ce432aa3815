// Package reconciler turns revisions into live state: it plans (observe and
// diff every host), rolls changes out in batches with verification after
// each, rolls back on failure, keeps hosts converged in a drift loop, and
// records everything in a state store and in metrics.
package reconciler

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// Dialer gives the transport to one host. The reconciler closes every
// transport it gets once it is done with it; a dialer that pools
// connections returns a transport whose Close leaves the pool intact.
type Dialer interface {
	Transport(ctx context.Context, h *config.Host) (targets.Transport, error)
}

// CheckResult is the outcome of one verification check on one host.
type CheckResult struct {
	// Check names the check ("http/healthz"); it is a metric label, so it
	// must stay low-cardinality.
	Check  string
	OK     bool
	Reason string
	// Tests are the test counts of a junit check (nil for other kinds).
	Tests *verify.Tests
}

// Verifier runs every check of a host (h.Checks) and returns one result per check.
type Verifier interface {
	Verify(ctx context.Context, env string, h *config.Host, t targets.Transport) []CheckResult
}

// Loader loads and validates every environment of a revision's checkout
// (config.LoadRevision with the daemon's options).
type Loader func(dir string) (*config.Revision, error)

// DefaultLoader is config.LoadRevision with opts.
func DefaultLoader(opts config.LoadOptions) Loader {
	return func(dir string) (*config.Revision, error) { return config.LoadRevision(dir, opts) }
}

// Revisions gives back the checkout of a revision seen before. Manual
// rollback uses it, and so does enforcing the last good revision after a
// restart. Without it, the revision's folder recorded in history is used
// when it still exists.
type Revisions interface {
	Checkout(ctx context.Context, rev sources.Revision) (sources.Revision, error)
}

// Options are the reconciler's dependencies and settings.
type Options struct {
	Store store.Store
	// Ownership, in cluster mode, says which environments this replica
	// owns: it works only on those, each write fenced with its token.
	Ownership Ownership
	Dialer    Dialer
	Drivers   map[string]targets.Driver
	Load      Loader
	// LoadUntrusted loads revisions that may not run anything (pull
	// request previews, `plan`): its inventories give their last result
	// and never run (nil: Load, for loaders without inventories).
	LoadUntrusted Loader
	// LoadPreview loads a preview environment of a pull request's head;
	// Provisioner creates and destroys its hosts (nil: preview templates
	// give no environments, previewenv.go).
	LoadPreview PreviewLoader
	Provisioner Provisioner
	// Verifier runs checks after each batch; nil means no checks run.
	Verifier Verifier
	// Progress receives an event at each step of the work on a host
	// (observe, snapshot, apply, verify with each check's attempts,
	// rollback) in rollouts and drift passes; nil sends none.
	Progress  status.Progress
	Revisions Revisions
	Reporters []status.Reporter
	Logger    zerolog.Logger
	// Registerer receives the metrics; nil keeps them in a private registry.
	Registerer prometheus.Registerer
	// Clock stamps times and times the waits before retries (the wall
	// clock when nil).
	Clock kit.Clock
	// Retry is the backoff before a rollout that failed for a transient
	// reason is tried again: Initial (0: 10 s) doubling up to Max (0: the
	// environment's drift interval), jittered.
	Retry   kit.Backoff
	Version string
	// URL is the status page base, put in reports ("" for none).
	URL string
	// HostParallelism bounds how many hosts are worked on at once (observed,
	// applied, verified) over all environments (0: 16).
	HostParallelism int
	// DriftInterval is the default drift interval (0: 5 minutes).
	DriftInterval time.Duration
	// BeforeHostWrite, a test hook, is called with the environment right
	// before each write to a host during an apply, after the check that
	// the worker still owns it (cluster mode): a test pauses the replica
	// there. Nil in production.
	BeforeHostWrite func(env string)
	// HostTimeout bounds the work on one host in one step: observe, apply,
	// verify, restore (0: 10 minutes).
	HostTimeout time.Duration
	// ReportTimeout bounds one reporter call (0: 30 seconds).
	ReportTimeout time.Duration
	// Sources names every configured source. Once each has produced a
	// revision, promotions are checked across all of them (upstreams no
	// source declares, cycles through several sources).
	Sources []string
	// NotifyReminder is how long a state already reported (drift left in
	// place, a failing environment) goes unreported before it is reported
	// again (0: 24 hours). A change of state is reported at once.
	NotifyReminder time.Duration
	// FullDiffs names the environments whose preview reports carry full
	// diffs; the others carry summaries without host content.
	FullDiffs []string
	// HashKey keys the content hashes of preview summaries (a random key
	// for this process when empty).
	HashKey []byte
}

// Reconciler is the daemon's core. Its methods are safe for concurrent
// use; work on one environment is serialised.
type Reconciler struct {
	opts    Options
	hashKey []byte
	log     zerolog.Logger
	m       *metrics
	store   store.Store
	now     func() time.Time
	clock   kit.Clock
	reports sync.WaitGroup
	// hostSlots holds one token per host being worked on, over every
	// environment (HostParallelism).
	hostSlots chan struct{}

	mu   sync.Mutex
	envs map[string]*envState
	// workers holds the worker of each environment that has one; run is
	// the daemon loop's scope while Run runs (nil otherwise).
	workers map[string]*worker
	run     *runScope
	// declared holds, per source, the environments of its newest revision
	// that loaded.
	declared map[string][]*config.Environment
	// refused holds, per source, the head revision it refused.
	refused map[string]sources.Revision
	// promotionErr holds, per environment, what is wrong with its
	// promote.from across every source's revision, as last sent to its
	// worker.
	promotionErr map[string]string
	// pending holds the newest revision offered to each environment
	// (cluster mode), so that a replica gaining it acts on it.
	pending map[string]target
	// rebalance (capacity one) says that the owned environments changed.
	rebalance chan struct{}

	// fences holds the fence of each owned environment's worker (cluster
	// mode), under fenceMu.
	fenceMu sync.Mutex
	fences  map[string]store.Fence

	// resolved is the revision resolve loaded last, under resolveMu.
	resolveMu sync.Mutex
	resolved  *resolvedRev
}

// envState is the in-memory state of one environment. Its worker is the
// only one that reads or writes its fields (except hostUp, which the
// worker's host goroutines write under hostMu); the others read snap, the
// snapshot the worker publishes after each step.
type envState struct {
	// owner is the environment's newest worker (guarded by
	// Reconciler.mu); the next one starts once it has stopped.
	owner *worker
	snap  atomic.Pointer[snapshot]
	rec   store.EnvRecord
	// applied is the configuration of rec.Applied, when loaded.
	applied *config.Environment
	// desired is the newest revision received that is not quarantined;
	// when it differs from the applied one, the next pass rolls it out.
	desired    *target
	driftCount int
	// driftCounts are the drift series last published (nil before the
	// first drift pass).
	driftCounts map[driftKey]int
	driftSince  map[string]time.Time
	hostMu      sync.Mutex
	hostUp      map[string]bool
	// notices remembers, per kind of state, what was last reported.
	notices map[string]notice
	// latest is the newest revision of the environment's own source; for a
	// gated environment it holds the gates' configuration and, without
	// promotion, the revision that waits at them.
	latest *target
	// gatePlan is the plan of the revision awaiting approval.
	gatePlan *status.Plan
	// wakeAt is when the gates should be looked at again (zero: on events).
	wakeAt time.Time
	// refused says that the environment's source refused its head ("" when
	// it did not); promotionErr is what is wrong with the environment's
	// promote.from across every source's revision ("" when nothing is).
	refused, promotionErr string
	// inventoryAt is when the environment's inventory was last read.
	inventoryAt time.Time
	// retries counts the rollouts failed in a row for a transient reason;
	// retryAt is when the next is due (zero: none).
	retries int
	retryAt time.Time
	// journalOpen says that the environment's journal may be open: a
	// rollout opened it and has not closed it, or the recovery found it
	// and could not finish. A wake then passes again, to recover it.
	journalOpen bool
	// behindSince is when the worker found its revision to roll out older
	// than the one another replica applied (zero: it is not; behind).
	behindSince time.Time
}

// name is the environment's name (it never changes).
func (st *envState) name() string { return st.rec.Name }

func newEnvState(rec store.EnvRecord) *envState {
	st := &envState{rec: rec, driftSince: map[string]time.Time{}, hostUp: map[string]bool{}, notices: map[string]notice{}}
	st.publish()
	return st
}

// target is an environment's configuration in one revision.
type target struct {
	rev sources.Revision
	env *config.Environment
	// decision is the approval that let the revision through its gate;
	// forced marks a manual sync through a closed deploy window.
	decision *store.Decision
	forced   bool
}

// New checks the options and registers the metrics.
func New(opts Options) (*Reconciler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("new reconciler: no store")
	case opts.Dialer == nil:
		return nil, errors.New("new reconciler: no dialer")
	case opts.Drivers == nil:
		return nil, errors.New("new reconciler: no drivers")
	case opts.Load == nil:
		return nil, errors.New("new reconciler: no loader")
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.HostParallelism <= 0 {
		opts.HostParallelism = kit.HostParallelism
	}
	if opts.DriftInterval <= 0 {
		opts.DriftInterval = 5 * time.Minute
	}
	if opts.HostTimeout <= 0 {
		opts.HostTimeout = 10 * time.Minute
	}
	if opts.ReportTimeout <= 0 {
		opts.ReportTimeout = 30 * time.Second
	}
	if opts.NotifyReminder <= 0 {
		opts.NotifyReminder = 24 * time.Hour
	}
	clock := opts.Clock
	if clock == nil {
		clock = kit.Wall{}
	}
	m, err := newMetrics(opts.Registerer, opts.Version)
	if err != nil {
		return nil, err
	}
	hashKey := opts.HashKey
	if len(hashKey) == 0 {
		hashKey = make([]byte, 32)
		_, _ = rand.Read(hashKey) // crypto/rand.Read never fails on Linux.
	}
	r := &Reconciler{
		opts: opts, hashKey: hashKey, log: opts.Logger, m: m, store: opts.Store, now: clock.Now, clock: clock,
		hostSlots: make(chan struct{}, opts.HostParallelism),
		envs:      map[string]*envState{}, workers: map[string]*worker{}, declared: map[string][]*config.Environment{},
		refused: map[string]sources.Revision{}, promotionErr: map[string]string{},
		pending: map[string]target{}, rebalance: make(chan struct{}, 1), fences: map[string]store.Fence{},
	}
	if opts.Ownership != nil {
		r.store = store.Owned(opts.Store, r.fenceOf)
	}
	recs, err := opts.Store.Envs()
	if err != nil {
		return nil, fmt.Errorf("new reconciler: %w", err)
	}
	for _, rec := range recs {
		st := newEnvState(rec)
		r.envs[rec.Name] = st
		if seriesForgotten(rec) {
			continue
		}
		m.setEnvState(rec.Name, kit.Short(rec.Applied.Commit), displayState(rec), classOf(rec))
		if rec.State != status.StateRemoved {
			m.setPending(rec.Name, rec.Gate)
		}
	}
	return r, nil
}

// Close waits for reports still being delivered.
func (r *Reconciler) Close() error {
	r.reports.Wait()
	return nil
}

// state returns the environment's in-memory state, creating it from the
// store's record (or empty) the first time.
func (r *Reconciler) state(name string) *envState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked(name)
}

// stateLocked is state for a caller that holds r.mu.
func (r *Reconciler) stateLocked(name string) *envState {
	st, ok := r.envs[name]
	if !ok {
		st = newEnvState(store.EnvRecord{Name: name, State: status.StateUnknown})
		r.envs[name] = st
	}
	return st
}

// update changes an environment's record, writes it to the store and
// publishes the environment's snapshot. Only the environment's worker
// calls it.
func (r *Reconciler) update(st *envState, fn func(rec *store.EnvRecord)) {
	r.change(st, fn)
	if err := r.store.PutEnv(st.rec); err != nil {
		r.log.Error().Err(err).Str("environment", st.rec.Name).Msg("cannot record environment state")
	}
}

// change is update without the write to the store: readers and the
// series see the change, the store does not (it has the record already,
// or must keep what it has).
func (r *Reconciler) change(st *envState, fn func(rec *store.EnvRecord)) {
	fn(&st.rec)
	rec := st.rec
	st.publish()
	r.m.setEnvState(rec.Name, kit.Short(rec.Applied.Commit), displayState(rec), classOf(rec))
	// Every environment has its gate series, 0 while nothing is held; a
	// retired one has none (markRemoved drops them).
	if rec.State != status.StateRemoved {
		r.m.setPending(rec.Name, rec.Gate)
	}
}

// report hands a report to every reporter, each in its own goroutine with
// a timeout, so a slow or failing reporter never holds a rollout.
func (r *Reconciler) report(rep status.Report) {
	if rep.Time.IsZero() {
		rep.Time = r.now()
	}
	if rep.URL == "" && r.opts.URL != "" {
		rep.URL = r.opts.URL + "/environments/" + rep.Environment
	}
	for _, rp := range r.opts.Reporters {
		r.reports.Add(1)
		go func(rp status.Reporter) {
			defer r.reports.Done()
			defer func() {
				if p := recover(); p != nil {
					r.log.Error().Str("environment", rep.Environment).Interface("panic", p).Msg("reporter panicked")
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), r.opts.ReportTimeout)
			defer cancel()
			rp.Report(ctx, rep)
		}(rp)
	}
}
