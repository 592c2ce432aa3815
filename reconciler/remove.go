package reconciler

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// retireRemoved retires every environment that came from rev's source and
// that cfg, the newest revision of that source, no longer declares.
func (r *Reconciler) retireRemoved(rev sources.Revision, cfg *config.Revision) {
	declared := map[string]bool{}
	for _, env := range cfg.Environments {
		declared[env.Name] = true
	}
	r.mu.Lock()
	var gone []string
	for name, st := range r.envs {
		// A preview environment is declared by its pull request; it ends
		// with it (previewenv.go).
		if snap := st.snap.Load(); !declared[name] && snap.rec.State != status.StateRemoved && snap.rec.Preview == nil && snap.source == rev.Source {
			gone = append(gone, name)
		}
	}
	r.mu.Unlock()
	for _, name := range gone {
		r.retire(name, request{rev: rev})
	}
}

// envSource is the source an environment's revisions come from: the
// applied one's, or the waiting one's before anything was applied. Only
// the environment's worker calls it (snapshots keep it).
func envSource(st *envState) string {
	if st.rec.Applied.Source != "" {
		return st.rec.Applied.Source
	}
	if st.desired != nil {
		return st.desired.rev.Source
	}
	return ""
}

// retire has the environment's worker (started when it has none) mark it
// removed, after the requests it has queued, and end; it is detached at
// once, so that a revision declaring the environment again gets a new
// worker, which starts once this one has stopped. req.end ends a preview
// environment (only the first end counts).
func (r *Reconciler) retire(name string, req request) {
	req.kind = reqRetire
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workerLocked(name)
	w.push(req)
	r.detachLocked(w)
}

// retireNow is a retirement on the environment's worker: the preview's end
// claimed (req.end), the environment marked removed, a preview's hosts
// destroyed. It reports true: the worker ends.
func (r *Reconciler) retireNow(ctx context.Context, w *worker, req request) bool {
	st, rev := w.st, req.rev
	if req.end != "" {
		ended := false
		r.update(st, func(rec *store.EnvRecord) {
			if rec.Preview != nil && rec.Preview.Ended == "" {
				rec.Preview.Ended, ended = req.end, true
				rev = sources.Revision{Source: rec.Preview.Source, Closed: true}
			}
		})
		if !ended { // ended already: whoever ended it tears it down
			return true
		}
	}
	removed := st.rec.State == status.StateRemoved
	if !removed {
		r.markRemoved(st, rev)
	}
	r.teardownPreview(ctx, st) // a preview's hosts, once nothing touches them
	return true
}

// markRemoved records the removal, unless the environment was declared
// again meanwhile (a new worker exists), and drops its drift and host
// series so that no alert fires for an environment nobody declares.
func (r *Reconciler) markRemoved(st *envState, rev sources.Revision) {
	name := st.rec.Name
	r.mu.Lock()
	_, again := r.workers[name]
	r.mu.Unlock()
	if again {
		return
	}
	st.desired, st.driftCount, st.driftCounts = nil, 0, nil
	st.driftSince, st.notices = map[string]time.Time{}, map[string]notice{}
	st.hostMu.Lock()
	st.hostUp = map[string]bool{}
	st.hostMu.Unlock()
	env := prometheus.Labels{"environment": name}
	r.m.drift.DeletePartialMatch(env)
	r.m.driftOldest.DeletePartialMatch(env)
	r.m.hostUp.DeletePartialMatch(env)
	r.m.pending.DeletePartialMatch(env)
	r.m.pendingSince.DeletePartialMatch(env)
	r.update(st, func(rec *store.EnvRecord) {
		rec.State, rec.LastError = status.StateRemoved, fmt.Sprintf("not declared by revision %s of source %s", rev.Short(), rev.Source)
		if why := previewRemovedReason(*rec); why != "" {
			rec.LastError = why
		}
	})
	why := previewRemovedReason(st.rec)
	if why != "" {
		r.log.Info().Str("environment", name).Str("reason", why).Msg("preview environment removed: not reconciled any more")
		return
	}
	r.log.Warn().Str("environment", name).Str("source", rev.Source).Str("revision", rev.Short()).
		Msg("environment no longer declared by its source: not reconciled any more, its hosts are left as they are")
}
