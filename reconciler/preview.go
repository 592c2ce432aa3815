package reconciler

import (
	"context"
	"sort"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// offerPreview queues a preview, replacing a waiting one of the same pull request.
func (w *worker) offerPreview(tg target) {
	w.mu.Lock()
	w.previews[tg.rev.PullRequest] = tg
	w.mu.Unlock()
	select {
	case w.previewReady <- struct{}{}:
	default:
	}
}

// takePreviews returns the waiting previews, by pull request number.
func (w *worker) takePreviews() []target {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]target, 0, len(w.previews))
	for _, tg := range w.previews {
		out = append(out, tg)
	}
	clear(w.previews)
	sort.Slice(out, func(i, j int) bool { return out[i].rev.PullRequest < out[j].rev.PullRequest })
	return out
}

// preview plans a pull request's revision and reports the plan; it never applies.
func (r *Reconciler) preview(ctx context.Context, st *envState, tg target) {
	prev := st.applied
	p, hosts := r.plan(ctx, tg, prev)
	r.report(status.Report{Environment: tg.env.Name, Source: tg.rev.Source, Commit: tg.rev.Commit, Status: status.StatusPreview,
		Description: p.Summary(), PullRequest: tg.rev.PullRequest, Plan: r.published(p, hosts), Gates: gateInfo(tg.env)})
}

// plan observes and diffs every host of tg without changing anything or
// running anything tg declares (a preview), and returns the plan with the
// hosts it was made from.
func (r *Reconciler) plan(ctx context.Context, tg target, prev *config.Environment) (*status.Plan, []*hostRun) {
	log := r.log.With().Str("environment", tg.env.Name).Str("revision", tg.rev.Short()).Logger()
	hosts := r.planEnv(ctx, tg.env, prev, tg.env.Prune, planPreview, log)
	closeHosts(hosts)
	p := &status.Plan{Environment: tg.env.Name, Commit: tg.rev.Commit}
	for _, h := range hosts {
		p.Hosts = append(p.Hosts, h.plan)
	}
	return p, hosts
}
