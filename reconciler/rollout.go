package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/traffic"
	"github.com/driftless/driftless/reconciler/verify"
)

// hostOutcome is what happened to one host of a batch.
type hostOutcome struct {
	changes int
	err     error
	// verify is true when the apply went through but a check failed.
	verify bool
	// tests are the test counts of the host's junit checks.
	tests *verify.Tests
}

// rollout brings the environment to tg, in order: provision a preview's
// hosts, plan every host, open the journal, run the batches (apply and
// verify, rolling back when more hosts fail than the rollout allows) and
// complete. History, metrics, the environment's record and the final
// report are written in a deferred step (finish), so no exit path skips
// them. Only the environment's worker calls it.
func (r *Reconciler) rollout(ctx context.Context, st *envState, tg target, trigger string) (run store.Run) {
	start := r.now()
	provisioned := r.provisionPreview(ctx, st, &tg) // a preview's hosts, before its first rollout
	env := tg.env
	run = store.Run{Environment: env.Name, Revision: tg.rev, Trigger: trigger, Start: start, Decision: tg.decision, Forced: tg.forced}
	stored := false
	defer func() {
		r.finish(ctx, st, &outcome{kind: outRollout, tg: tg, run: &run, stored: stored,
			cut: ctx.Err() != nil && run.Changes == 0 && run.ErrorClass == status.ErrorPlan})
	}()
	if provisioned != nil {
		run.Result, run.Error, run.ErrorClass = status.ResultFailed, provisioned.Error(), status.ErrorPlan
		return run
	}
	ro := &rolloutRun{st: st, tg: tg, run: &run, maxFailed: env.Rollout.MaxFailed,
		log: r.log.With().Str("environment", env.Name).Str("revision", tg.rev.Short()).Logger()}
	hosts := r.planRollout(ctx, ro)
	defer closeHosts(hosts)
	changed := ro.planned(hosts)
	if !r.beginRollout(ro, changed) || !r.runBatches(ctx, ro, changed) {
		return run
	}
	stored = true
	r.completeRollout(ctx, ro, changed)
	return run
}

// rolloutRun is what the steps of one rollout share.
type rolloutRun struct {
	st  *envState
	tg  target
	run *store.Run
	log zerolog.Logger
	// prev is the applied configuration, the one a rollback returns to.
	prev *config.Environment
	// failed counts the hosts failed so far (planning and batches), errs
	// their errors; maxFailed is how many the rollout allows.
	failed, maxFailed int
	errs              []error
	// touched are the hosts whose batch ran; reason is what failed first
	// on them ("apply" or "verify").
	touched []*hostRun
	reason  string
	rot     *rotation
}

// planRollout observes and diffs every host against the applied
// configuration.
func (r *Reconciler) planRollout(ctx context.Context, ro *rolloutRun) []*hostRun {
	env := ro.tg.env
	if env.Prune {
		// After a restart the applied configuration is loaded on demand:
		// prune needs it to know what the new revision no longer declares.
		if err := r.ensureApplied(ctx, ro.st); err != nil {
			ro.log.Debug().Err(err).Msg("no applied revision to prune against")
		}
	}
	ro.prev = ro.st.applied
	r.keepHosts(env)
	r.m.initChecks(env)
	return r.planEnv(ctx, env, ro.prev, env.Prune, planTrusted, ro.log)
}

// planned counts the hosts that could not be planned and returns those
// with changes. The run ends here (failed, or a no-op) when too many
// hosts failed or none has a change; it returns nil then.
func (ro *rolloutRun) planned(hosts []*hostRun) []*hostRun {
	var changed []*hostRun
	for _, h := range hosts {
		switch {
		case h.failed():
			ro.failed++
			ro.run.FailedHosts = append(ro.run.FailedHosts, h.host.Name)
			ro.errs = append(ro.errs, errors.New(h.plan.Err))
			h.log.Warn().Str("err", h.plan.Err).Msg("host not planned")
		case h.changed():
			changed = append(changed, h)
		}
	}
	switch {
	case ro.failed > ro.maxFailed:
		ro.run.Result, ro.run.Error, ro.run.ErrorClass = status.ResultFailed, fmt.Sprintf("%d host(s) could not be planned, %d allowed: %v", ro.failed, ro.maxFailed, errors.Join(ro.errs...)), status.ErrorPlan
		return nil
	case len(changed) == 0:
		ro.run.Result = status.ResultNoop
		return nil
	}
	return changed
}

// beginRollout says that the rollout starts and opens its journal; false
// when the run ended already (planned said so, or the journal failed).
func (r *Reconciler) beginRollout(ro *rolloutRun, changed []*hostRun) bool {
	if ro.run.Result != "" {
		return false
	}
	env, rev := ro.tg.env, ro.tg.rev
	r.update(ro.st, func(rec *store.EnvRecord) { rec.State = status.StateApplying })
	r.report(status.Report{Environment: env.Name, Source: rev.Source, Commit: rev.Commit, Status: status.StatusPending,
		Description: fmt.Sprintf("applying to %d host(s)", len(changed))})
	j := store.Journal{Environment: env.Name, Revision: rev, Started: r.now()}
	for _, h := range changed {
		j.Hosts = append(j.Hosts, *h.host)
	}
	// Open from here, even when the write fails: it may have gone in.
	ro.st.journalOpen = true
	if err := r.store.BeginJournal(j); err != nil {
		ro.run.Result, ro.run.Error = status.ResultFailed, err.Error()
		return false
	}
	ro.rot = &rotation{bal: traffic.New(env.Traffic, traffic.Options{})}
	return true
}

// runBatches applies and verifies the changed hosts batch by batch; false
// when the run ended in a batch (interrupted, or rolled back).
func (r *Reconciler) runBatches(ctx context.Context, ro *rolloutRun, changed []*hostRun) bool {
	env := ro.tg.env
	all := batches(changed, env.Rollout.Canary, env.Rollout.Batch)
	for n, b := range all {
		for _, h := range b {
			h.batch, h.batches = n+1, len(all)
		}
		outs := r.runBatchOutOfRotation(ctx, env, b, ro.rot)
		ro.touched = append(ro.touched, b...)
		for i, o := range outs {
			r.recordHost(ro, b[i], o)
		}
		if ctx.Err() != nil || interrupted(outs) {
			// Shutting down, the environment went to another replica
			// (cluster mode), or the journal could not be written (the
			// store cut off): the journal stays open (as far as it was
			// written) and the rollback happens at the next pass, the
			// next start or the new owner's first pass, before anything
			// else. None is a failure of the revision: nothing is rolled
			// back or quarantined here.
			ro.run.Result, ro.run.Error, ro.run.ErrorClass = status.ResultFailed, fmt.Sprintf("interrupted: %v", errors.Join(append(ro.errs, ctx.Err())...)), status.ErrorInterrupted
			return false
		}
		if ro.failed > ro.maxFailed {
			r.abortRollout(ctx, ro)
			return false
		}
	}
	return true
}

// interrupted reports whether a host of the batch stopped for a reason
// that is not the revision's: it refused this replica's writes because
// the replica no longer owns the environment, or the rollout's journal
// could not be written.
func interrupted(outs []hostOutcome) bool {
	return slices.ContainsFunc(outs, func(o hostOutcome) bool {
		return errors.Is(o.err, store.ErrFenced) || errors.Is(o.err, errJournal)
	})
}

// recordHost adds what happened to one host of a batch to the run.
func (r *Reconciler) recordHost(ro *rolloutRun, h *hostRun, o hostOutcome) {
	run := ro.run
	run.Changes += o.changes
	run.Changed = append(run.Changed, h.applied...)
	r.emit(ro.tg.env.Name, h, status.StepDone, statusOf(o.err == nil), o.changes)
	run.Tests = addTests(run.Tests, o.tests)
	if o.err == nil {
		return
	}
	ro.failed++
	run.FailedHosts = append(run.FailedHosts, h.host.Name)
	ro.errs = append(ro.errs, o.err)
	h.log.Error().Err(o.err).Msg("host failed")
	if ro.reason == "" {
		ro.reason = "apply"
		if o.verify {
			ro.reason = "verify"
		}
	}
}

// abortRollout rolls back every host touched, after more hosts failed
// than the rollout allows. Hosts that failed were held out of rotation
// while rolled back; they go back only when the rollback worked.
func (r *Reconciler) abortRollout(ctx context.Context, ro *rolloutRun) {
	run := ro.run
	run.Result, run.ErrorClass = status.ResultRolledBack, status.ErrorApply
	if ro.reason == "verify" {
		run.ErrorClass = status.ErrorVerify
	}
	run.Error = fmt.Sprintf("%d host(s) failed, %d allowed: %v", ro.failed, ro.maxFailed, errors.Join(ro.errs...))
	if err := r.rollback(ctx, ro.st, ro.tg.env, ro.prev, ro.touched, ro.reason); err != nil {
		run.Error += "; rollback: " + err.Error()
		for _, h := range ro.rot.held {
			run.Error += "; left out of rotation: " + h.host.Name
		}
	} else if err := r.backIn(ctx, ro.tg.env, ro.rot); err != nil {
		run.Error += "; " + err.Error()
	}
}

// completeRollout records the rollout's end: the new applied revision,
// the run and the journal's close, in one transaction (finish writes
// nothing more of it), so that no failure leaves the hosts on the new
// revision and the store on the old one, or the journal closed without
// the run that says what the rollout did. When that write fails (the
// store cut off past what completeJournal waits for, the environment gone
// to another replica), the rollout is interrupted: the journal stays open
// and whoever next works on the environment (this worker's next pass, or
// the new owner) rolls it back and records it, then rolls the revision
// out again.
func (r *Reconciler) completeRollout(ctx context.Context, ro *rolloutRun, changed []*hostRun) {
	run := ro.run
	run.Result = status.ResultSuccess
	if len(ro.errs) > 0 {
		run.Error = fmt.Sprintf("%d host(s) failed, %d allowed: %v", ro.failed, ro.maxFailed, errors.Join(ro.errs...))
	}
	for _, h := range ro.rot.held {
		run.Error += "; left out of rotation: " + h.host.Name
	}
	run.End = r.now()
	rec := ro.st.rec
	rec.Quarantined = slices.Clone(rec.Quarantined)
	rec.QuarantinedTrees = slices.Clone(rec.QuarantinedTrees)
	endRecord(&rec, *run, ro.tg.rev, false, false)
	id, err := r.completeJournal(ctx, rec, *run)
	if err != nil {
		ro.log.Error().Err(err).Msg("cannot record the end of the rollout; its journal stays open for the recovery")
		run.Result, run.ErrorClass = status.ResultFailed, status.ErrorInterrupted
		run.Error = strings.TrimPrefix(run.Error+"; interrupted: the end of the rollout could not be recorded: "+err.Error(), "; ")
		return
	}
	run.ID = id
	ro.st.journalOpen = false
	r.forgetPruned(ro.tg.env.Name, changed)
}

// completeJournal writes a successful rollout's end (store.CompleteJournal).
// In a cluster, a write that fails while this worker still owns the
// environment (etcd unreachable, the lease not yet run out) is tried
// again (200 ms after the first failure, doubling up to 5 s), until it
// goes through or the ownership is lost: when etcd answers in time the
// rollout stands, and past the lease it is left to the recovery. A write
// the store refuses for good (store.ErrRefused: etcd's space quota
// exceeded, a request too large) is not tried again: the worker would
// hold the environment, and every request queued for it, until an
// operator acts. It is counted in driftless_rollout_end_refused_total,
// and its journal, still open, is left to the recovery like any other. A
// daemon alone tries once.
func (r *Reconciler) completeJournal(ctx context.Context, rec store.EnvRecord, run store.Run) (uint64, error) {
	backoff := kit.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	for n := 1; ; n++ {
		id, err := r.store.CompleteJournal(rec, run)
		if errors.Is(err, store.ErrRefused) {
			r.m.endRefused.WithLabelValues(rec.Name).Inc()
		}
		if err == nil || r.opts.Ownership == nil || errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrRefused) || r.fenceChanged(rec.Name) {
			return id, err
		}
		if n == 1 {
			r.log.Warn().Err(err).Str("environment", rec.Name).Msg("cannot record the end of the rollout yet; trying again while this replica owns the environment")
		}
		t := time.NewTimer(backoff.Delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, err
		case <-t.C:
		}
	}
}

// forgetPruned drops the first-managed records of resources a successful
// rollout pruned: if one is declared again later, what it replaces then is
// what a later prune must put back.
func (r *Reconciler) forgetPruned(env string, hosts []*hostRun) {
	for _, h := range hosts {
		for _, res := range h.order {
			if !h.pruned[res.ID()] {
				continue
			}
			if err := r.store.ForgetFirstManaged(env, h.host.Name, res.ID()); err != nil {
				h.log.Error().Err(err).Msg("cannot forget first-managed state")
			}
		}
	}
}

// batches cuts hosts into the canary batch (when canary > 0) and batches
// of size (at least 1).
func batches(hosts []*hostRun, canary, size int) [][]*hostRun {
	if size <= 0 {
		size = 1
	}
	var out [][]*hostRun
	i := 0
	if canary > 0 {
		i = min(canary, len(hosts))
		out = append(out, hosts[:i])
	}
	for i < len(hosts) {
		j := min(i+size, len(hosts))
		out = append(out, hosts[i:j])
		i = j
	}
	return out
}

// runBatch applies the hosts of one batch, then verifies those whose apply
// went through; each phase works on at most parallelism hosts at once (0:
// all of them), and takes its hosts' slots of HostParallelism, which is
// shared by all environments. Verification waits for the whole batch, so that a check
// looking across hosts (a Prometheus query over the fleet, a load
// balancer's health) sees the batch as it will stay, not half applied.
func (r *Reconciler) runBatch(ctx context.Context, env string, b []*hostRun, parallelism int) []hostOutcome {
	outs := make([]hostOutcome, len(b))
	forEach(len(b), parallelism, func(i int) {
		r.hostSlots <- struct{}{}
		defer func() { <-r.hostSlots }()
		n, err := r.applyHost(ctx, env, b[i], true)
		outs[i] = hostOutcome{changes: n, err: err}
	})
	forEach(len(b), parallelism, func(i int) {
		if outs[i].err != nil {
			return
		}
		r.hostSlots <- struct{}{}
		defer func() { <-r.hostSlots }()
		tests, err := r.verifyHost(ctx, env, b[i], b[i].host)
		outs[i].tests = tests
		if err != nil {
			outs[i].err, outs[i].verify = err, true
		}
	})
	return outs
}

// forEach calls fn for 0..n-1, at most parallelism at once (0: all at
// once), and returns when every call has.
func forEach(n, parallelism int, fn func(i int)) {
	if parallelism <= 0 || parallelism > n {
		parallelism = n
	}
	sem := make(chan struct{}, max(parallelism, 1))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// verifyHost runs the checks of h (hr's host, or its declaration in the
// revision a rollback went back to) over hr's transport and counts them;
// it fails when any check fails, naming each failed check with its reason.
// It returns the test counts of the host's junit checks (nil when none ran).
func (r *Reconciler) verifyHost(ctx context.Context, env string, hr *hostRun, h *config.Host) (tests *verify.Tests, err error) {
	if r.opts.Verifier == nil || len(h.Checks) == 0 {
		return nil, nil
	}
	r.emit(env, hr, status.StepVerify, status.StatusStarted, len(h.Checks))
	defer func() { r.emit(env, hr, status.StepVerify, statusOf(err == nil), len(h.Checks)) }()
	// The checks carry their own timeouts and retries; this bounds the
	// whole verification of a host, so a check that ignores its deadline
	// cannot hold the rollout forever.
	ctx, cancel := context.WithTimeout(r.withAttempts(ctx, env, hr), r.opts.HostTimeout)
	defer cancel()
	var failed []string
	for _, res := range r.opts.Verifier.Verify(ctx, env, h, hr.t) {
		if res.Tests != nil {
			tests = addTests(tests, res.Tests)
			r.m.countTests(env, *res.Tests)
		}
		result := "pass"
		if !res.OK {
			result = "fail"
			failed = append(failed, res.Check+": "+res.Reason)
		}
		r.m.verification.WithLabelValues(env, res.Check, result).Inc()
	}
	if len(failed) > 0 {
		return tests, fmt.Errorf("verify %s: %s", h.Name, strings.Join(failed, "; "))
	}
	return tests, nil
}

// addTests returns the sum of two optional test counts (nil when both are).
func addTests(a, b *verify.Tests) *verify.Tests {
	if b == nil {
		return a
	}
	sum := *b
	if a != nil {
		sum = a.Add(*b)
	}
	return &sum
}
