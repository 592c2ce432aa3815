package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// guard runs fn with its own timeout and turns a driver's panic into an
// error, so that one broken driver cannot take the daemon down.
func guard(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("driver panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// hostErr hides the host's secret values (Host.SecretValues) in err: a
// command's output or a host's answer, which errors quote, may print one (a
// failing command that shows its environment).
func hostErr(h *config.Host, err error) error {
	return redact.New(h.SecretValues...).Err(err)
}

// errJournal marks a failure to write a rollout's journal (the store cut
// off, or the environment gone to another replica): it interrupts the
// rollout, it is no failure of the revision.
var errJournal = errors.New("rollout journal not written")

// applyHost applies the host's changes in order. With journal set, the
// prior state of every resource of the batch is recorded in the store, in
// one synced transaction, before anything is touched; after the batch, one
// more transaction marks the applied entries and drops those never started
// (after a failure), so a rollback restores what it did before: the applied
// resources, the one that failed and, when it failed within a WriteFiles
// call, the rest of that call's files. A crash in between leaves every entry,
// and restoring one never started writes back what is still there. Then
// every resource notified by a changed resource is refreshed, once. It
// returns how many resources changed.
func (r *Reconciler) applyHost(ctx context.Context, env string, hr *hostRun, journal bool) (n int, err error) {
	var seqs []uint64
	if journal && len(hr.order) > 0 {
		r.emit(env, hr, status.StepSnapshot, status.StatusStarted, len(hr.order))
		entries := make([]store.JournalEntry, len(hr.order))
		for i, res := range hr.order {
			entries[i] = store.JournalEntry{Host: hr.host.Name, Resource: res, Snapshot: hr.changes[res.ID()].Before}
		}
		if seqs, err = r.store.RecordSnapshots(env, entries); err != nil {
			r.emit(env, hr, status.StepSnapshot, status.StatusFailed, len(hr.order))
			return 0, fmt.Errorf("%w: %w", errJournal, err)
		}
	}
	r.emit(env, hr, status.StepApply, status.StatusStarted, len(hr.order))
	defer func() { r.emit(env, hr, status.StepApply, statusOf(err == nil), n) }()
	var done, touched int
	ctx, end, applyErr := r.fenceHost(ctx, hr.t, env, hostOpApply)
	defer end()
	if applyErr == nil {
		done, touched, applyErr = r.applyInOrder(ctx, env, hr)
	}
	if journal && len(seqs) > 0 {
		if err := r.store.FinishEntries(env, seqs[:done], seqs[touched:]); err != nil {
			return done, errors.Join(applyErr, fmt.Errorf("%w: %w", errJournal, err))
		}
	}
	if applyErr != nil {
		return done, applyErr
	}
	changed := hr.order[:done]
	if err := r.refresh(ctx, hr.t, hr.host, changed, func(id string) (config.Resource, bool) {
		res, ok := hr.byID[id]
		return res, ok
	}, hr.log); err != nil {
		return done, err
	}
	return done, nil
}

// applyInOrder applies the host's changes in order, stopping at the first
// failure. Consecutive changes that are each one file write go to the
// host together, in one WriteFiles call. It returns how many changes were
// applied and how many may have been touched: after a failure, the
// changes before touched (the failed one, and the rest of a failed
// WriteFiles call, whose files may have been written when the host was
// cut off) are to be restored by a rollback.
func (r *Reconciler) applyInOrder(ctx context.Context, env string, hr *hostRun) (done, touched int, err error) {
	for done < len(hr.order) {
		// In cluster mode every call to the host is made only while this
		// worker's fence is still the cluster's: a replica that lost the
		// environment in the middle of a batch (paused, cut off from
		// etcd) writes nothing more to the host.
		if r.opts.Ownership != nil && r.fenceChanged(env) {
			return done, done, fmt.Errorf("apply %s on %s: %w", hr.order[done].ID(), hr.host.Name, store.ErrFenced)
		}
		if r.opts.BeforeHostWrite != nil {
			r.opts.BeforeHostWrite(env)
		}
		actions, n, err := r.applyNext(ctx, env, hr, done)
		for i, action := range actions {
			res := hr.order[done+i]
			c := hr.changes[res.ID()]
			hr.log.Info().Str("resource", res.ID()).Str("action", action).Str("diff", c.Diff).Msg("applied")
			hr.applied = append(hr.applied, store.ResourceChange{Host: hr.host.Name, Resource: res.ID(), Action: action, Diff: c.Diff})
			r.m.changes.WithLabelValues(env, res.Kind, action).Inc()
		}
		if err != nil {
			// The change that failed: the first not applied, or the call's
			// last when it reports every write done and still fails (a
			// folder sync after the renames).
			failed := hr.order[done+min(len(actions), n-1)]
			return done + len(actions), done + n, fmt.Errorf("apply %s on %s: %w", failed.ID(), hr.host.Name, hostWriteErr(hostErr(hr.host, err)))
		}
		done += n
	}
	return done, done, nil
}

// applyNext applies the change at hr.order[from], or the run of file
// writes starting there, in one call to the host. It returns the actions
// of the changes applied, and how many changes the call covered.
func (r *Reconciler) applyNext(ctx context.Context, env string, hr *hostRun, from int) ([]string, int, error) {
	var writes []targets.FileWrite
	if err := guard(ctx, r.opts.HostTimeout, func(context.Context) error {
		writes = r.fileWrites(hr, from)
		return nil
	}); err != nil {
		return nil, 1, err
	}
	var steps []targets.Step
	na, native := hr.t.(targets.NativeApplier)
	if native && len(writes) < 2 {
		steps = r.nativeSteps(hr, from)
	}
	if len(writes) < 2 && len(steps) < 2 {
		res := hr.order[from]
		action, err := r.applyOne(ctx, env, hr, res, hr.changes[res.ID()])
		if err != nil {
			return nil, 1, err
		}
		return []string{action}, 1, nil
	}
	// Each change keeps the time budget it would have alone.
	var n, calls int
	err := guard(ctx, r.opts.HostTimeout*time.Duration(max(len(writes), len(steps))), func(ctx context.Context) error {
		var err error
		if len(writes) >= 2 {
			calls = len(writes)
			n, err = hr.t.WriteFiles(ctx, writes)
			return err
		}
		calls = len(steps)
		n, err = na.ApplyNative(ctx, steps)
		return err
	})
	actions := make([]string, n)
	for i := range actions {
		actions[i] = string(hr.changes[hr.order[from+i].ID()].Action)
	}
	return actions, calls, err
}

// nativeSteps returns the steps of the changes from hr.order[from] on
// whose kinds apply natively, up to the first that does not, that is not
// joinable (commit-confirmed: its driver's Apply arms and confirms the
// revert; an artifact: its driver's Apply fetches the archive), or that
// is a removal (applyOne looks up what a pruned resource was first).
func (r *Reconciler) nativeSteps(hr *hostRun, from int) []targets.Step {
	var steps []targets.Step
	for _, res := range hr.order[from:] {
		c := hr.changes[res.ID()]
		d := r.opts.Drivers[res.Kind]
		if !targets.Joinable(d) || c.Action == targets.Delete {
			break
		}
		steps = append(steps, targets.Step{Op: targets.StepApply, Resource: res, State: c.Before})
	}
	return steps
}

// fileWrites returns the writes of the changes from hr.order[from] on that
// are each one file write, up to the first that is not.
func (r *Reconciler) fileWrites(hr *hostRun, from int) []targets.FileWrite {
	var writes []targets.FileWrite
	for _, res := range hr.order[from:] {
		c := hr.changes[res.ID()]
		d, ok := r.opts.Drivers[res.Kind].(targets.Writer)
		if !ok || c.Action == targets.Delete {
			break
		}
		w, ok := d.Write(res, c.Before)
		if !ok {
			break
		}
		writes = append(writes, w)
	}
	return writes
}

// applyOne applies one change and returns what it did: the change's
// action, or for a pruned resource "restore" when it is put back as it was
// before driftless first managed it and "delete" when it is removed (it did
// not exist then, or that is not known).
func (r *Reconciler) applyOne(ctx context.Context, env string, hr *hostRun, res config.Resource, c targets.Change) (string, error) {
	d, ok := r.opts.Drivers[res.Kind]
	if !ok {
		return "", fmt.Errorf("no driver for kind %q", res.Kind)
	}
	if c.Action != targets.Delete {
		return string(c.Action), guard(ctx, r.opts.HostTimeout, func(ctx context.Context) error {
			return d.Apply(ctx, hr.t, res, c.Before)
		})
	}
	first, ok, err := r.store.FirstManaged(env, hr.host.Name, res.ID())
	if err != nil {
		return "", err
	}
	action := "restore"
	if !ok || !first.Present {
		first, action = targets.State{Present: false}, string(targets.Delete)
	}
	return action, guard(ctx, r.opts.HostTimeout, func(ctx context.Context) error {
		return d.Restore(ctx, hr.t, res, first)
	})
}

// refresh calls Refresh, once each, on every resource named in the notify
// list of a changed resource, in the order the lookup's resources are
// met in changed's notify lists. Kinds without Refresh are skipped.
func (r *Reconciler) refresh(ctx context.Context, t targets.Transport, h *config.Host, changed []config.Resource, lookup func(id string) (config.Resource, bool), log zerolog.Logger) error {
	seen := map[string]bool{}
	var todo []config.Resource
	// Declared order first: a service notified by two files restarts once,
	// after both, at the place the host declares it.
	for _, res := range h.Resources {
		for _, c := range changed {
			for _, n := range c.Notify {
				if n == res.ID() && !seen[n] {
					seen[n] = true
					todo = append(todo, res)
				}
			}
		}
	}
	for _, c := range changed {
		for _, n := range c.Notify {
			if !seen[n] {
				if res, ok := lookup(n); ok {
					seen[n] = true
					todo = append(todo, res)
				}
			}
		}
	}
	// A notified resource applied in this same run after every resource
	// that notifies it already runs with what they changed (a unit created
	// and started after its artifact): refreshing it would restart it at once.
	at := make(map[string]int, len(changed))
	lastNotifier := map[string]int{}
	for i, c := range changed {
		at[c.ID()] = i
		for _, n := range c.Notify {
			lastNotifier[n] = i
		}
	}
	var errs []error
	for _, res := range todo {
		rf, ok := r.opts.Drivers[res.Kind].(targets.Refresher)
		if !ok {
			continue
		}
		if i, ok := at[res.ID()]; ok && i > lastNotifier[res.ID()] {
			log.Debug().Str("resource", res.ID()).Msg("not refreshed: applied after what notifies it")
			continue
		}
		if err := guard(ctx, r.opts.HostTimeout, func(ctx context.Context) error {
			return rf.Refresh(ctx, t, res)
		}); err != nil {
			errs = append(errs, fmt.Errorf("refresh %s on %s: %w", res.ID(), h.Name, hostErr(h, err)))
			continue
		}
		log.Info().Str("resource", res.ID()).Msg("refreshed")
	}
	return errors.Join(errs...)
}

// restoreEntries puts back the journal's snapshots of one host, newest
// first, then refreshes what the restored resources notify. Consecutive
// restores that are each one file write go to the host together, in one
// WriteFiles call, as applies do. It goes on past a failure, so as much as
// possible is restored, and returns every error.
func (r *Reconciler) restoreEntries(ctx context.Context, t targets.Transport, h *config.Host, entries []store.JournalEntry, lookup func(id string) (config.Resource, bool), log zerolog.Logger) error {
	var errs []error
	var restored []config.Resource
	todo := slices.Clone(entries)
	slices.Reverse(todo)
	for i := 0; i < len(todo); {
		var writes []targets.FileWrite
		if err := guard(ctx, r.opts.HostTimeout, func(context.Context) error {
			writes = r.restoreWrites(todo[i:])
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("restore %s on %s: %w", todo[i].Resource.ID(), h.Name, hostErr(h, err)))
			i++
			continue
		}
		var steps []targets.Step
		na, native := t.(targets.NativeApplier)
		if native && len(writes) < 2 {
			steps = r.restoreSteps(todo[i:])
		}
		if len(writes) < 2 && len(steps) >= 2 {
			// Each restore keeps the time budget it would have alone.
			var n int
			err := guard(ctx, r.opts.HostTimeout*time.Duration(len(steps)), func(ctx context.Context) error {
				var err error
				n, err = na.ApplyNative(ctx, steps)
				return err
			})
			for _, e := range todo[i : i+n] {
				log.Info().Str("resource", e.Resource.ID()).Msg("restored")
				restored = append(restored, e.Resource)
			}
			if err != nil {
				// As for writes: the failed one is reported, the ones after
				// it are tried again.
				failed := min(n, len(steps)-1)
				errs = append(errs, fmt.Errorf("restore %s on %s: %w", todo[i+failed].Resource.ID(), h.Name, hostErr(h, err)))
				i += failed + 1
				continue
			}
			i += len(steps)
			continue
		}
		if len(writes) < 2 {
			e := todo[i]
			i++
			d, ok := r.opts.Drivers[e.Resource.Kind]
			if !ok {
				errs = append(errs, fmt.Errorf("restore %s on %s: no driver for kind %q", e.Resource.ID(), h.Name, e.Resource.Kind))
				continue
			}
			if err := guard(ctx, r.opts.HostTimeout, func(ctx context.Context) error {
				return d.Restore(ctx, t, e.Resource, e.Snapshot)
			}); err != nil {
				errs = append(errs, fmt.Errorf("restore %s on %s: %w", e.Resource.ID(), h.Name, hostErr(h, err)))
				continue
			}
			log.Info().Str("resource", e.Resource.ID()).Msg("restored")
			restored = append(restored, e.Resource)
			continue
		}
		// Each write keeps the time budget it would have alone.
		var n int
		err := guard(ctx, r.opts.HostTimeout*time.Duration(len(writes)), func(ctx context.Context) error {
			var err error
			n, err = t.WriteFiles(ctx, writes)
			return err
		})
		for _, e := range todo[i : i+n] {
			log.Info().Str("resource", e.Resource.ID()).Msg("restored")
			restored = append(restored, e.Resource)
		}
		if err != nil {
			// The restore that failed is reported; the ones after it are
			// tried again, in the next call.
			failed := min(n, len(writes)-1)
			errs = append(errs, fmt.Errorf("restore %s on %s: %w", todo[i+failed].Resource.ID(), h.Name, hostErr(h, err)))
			i += failed + 1
			continue
		}
		i += len(writes)
	}
	if err := r.refresh(ctx, t, h, restored, lookup, log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// restoreWrites returns the writes of the restores of entries from the
// first on that are each one file write, up to the first that is not.
func (r *Reconciler) restoreWrites(entries []store.JournalEntry) []targets.FileWrite {
	var writes []targets.FileWrite
	for _, e := range entries {
		d, ok := r.opts.Drivers[e.Resource.Kind].(targets.Writer)
		if !ok {
			break
		}
		w, ok := d.RestoreWrite(e.Resource, e.Snapshot)
		if !ok {
			break
		}
		writes = append(writes, w)
	}
	return writes
}

// restoreSteps returns the restores of entries from the first on whose
// kinds apply natively, up to the first that does not.
func (r *Reconciler) restoreSteps(entries []store.JournalEntry) []targets.Step {
	var steps []targets.Step
	for _, e := range entries {
		if !targets.Native(r.opts.Drivers[e.Resource.Kind]) {
			break
		}
		steps = append(steps, targets.Step{Op: targets.StepRestore, Resource: e.Resource, State: e.Snapshot})
	}
	return steps
}
