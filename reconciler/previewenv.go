package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// Preview environments: a template (an environment with preview: true on
// a followed branch) gives each pull request an environment NAME-pr-N
// whose revision is the pull request's head. Its hosts come from the
// template's provisioner, run only once a commit of the pull request was
// approved (or its author is trusted); closing the pull request, or its
// time to live running out, destroys them and marks the environment
// removed. The template always comes from the followed branch (the
// source's newest revision that loaded), never from the pull request.

// Provisioner creates and destroys a preview environment's hosts
// (inventory.Provisioner implements it). vars are the variables the
// commands get: DRIFTLESS_ENVIRONMENT, DRIFTLESS_TEMPLATE,
// DRIFTLESS_PULL_REQUEST, DRIFTLESS_COMMIT.
type Provisioner interface {
	Create(ctx context.Context, p *config.Provision, vars map[string]string) (created []byte, hosts []config.InventoryHost, err error)
	Destroy(ctx context.Context, p *config.Provision, vars map[string]string, created []byte) error
}

// PreviewLoader loads one preview environment of a pull request's checkout
// (config.LoadRevision with LoadOptions.Preview). It must run nothing.
type PreviewLoader func(dir string, p *config.PreviewLoad) (*config.Revision, error)

// template returns the preview template name of source's newest
// revision, or nil.
func (r *Reconciler) template(source, name string) *config.Environment {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.declared[source] {
		if e.Name == name && e.Preview {
			return e
		}
	}
	return nil
}

// livePreview is a live preview environment as its snapshot has it.
type livePreview struct {
	name string
	p    store.PreviewRecord
}

// previewStates returns the live preview environments of source (of one
// pull request when pr > 0), by name, from their snapshots.
func (r *Reconciler) previewStates(source string, pr int) []livePreview {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []livePreview
	for name, st := range r.envs {
		rec := st.snap.Load().rec
		p := rec.Preview
		if p != nil && p.Ended == "" && rec.State != status.StateRemoved && p.Source == source && (pr <= 0 || p.PullRequest == pr) {
			out = append(out, livePreview{name: name, p: *p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// openPreviews makes or updates the preview environment of every template
// of rev's source for rev, the newest head of a pull request, and offers
// the head to it. Its gate holds it until it is approved, unless its
// author is trusted.
func (r *Reconciler) openPreviews(ctx context.Context, rev sources.Revision) {
	if r.opts.LoadPreview == nil {
		return
	}
	r.mu.Lock()
	var templates []*config.Environment
	for _, e := range r.declared[rev.Source] {
		if e.Preview {
			templates = append(templates, e)
		}
	}
	r.mu.Unlock()
	head := rev
	head.Preview = false
	for _, tpl := range templates {
		r.send(config.PreviewName(tpl.Name, rev.PullRequest), request{kind: reqPreview, ctx: ctx, tg: target{rev: head, env: tpl}})
	}
}

// openPreview makes or updates, on its worker, the preview environment of
// template tpl for head, the newest head of a pull request, and offers the
// head to it.
func (r *Reconciler) openPreview(ctx context.Context, w *worker, tpl *config.Environment, head sources.Revision) {
	st, name := w.st, w.name
	now := r.now()
	if p := st.rec.Preview; p != nil && p.Ended != "" && !p.Destroyed {
		r.log.Warn().Str("environment", name).Int("pull_request", head.PullRequest).
			Msg("pull request reopened while its earlier preview's hosts are not destroyed yet; not previewed until they are")
		return
	}
	fresh := st.rec.Preview == nil || st.rec.Preview.Ended != "" || st.rec.State == status.StateRemoved
	if fresh {
		st.applied, st.desired, st.latest, st.gatePlan = nil, nil, nil, nil
	}
	r.update(st, func(rec *store.EnvRecord) {
		if fresh {
			// A new pull request, or one reopened: nothing of an
			// earlier life (its hosts were destroyed) counts.
			rec.Preview = &store.PreviewRecord{Template: tpl.Name, Source: head.Source, PullRequest: head.PullRequest}
			rec.Applied, rec.LastGood, rec.Taken, rec.Gate = sources.Revision{}, sources.Revision{}, "", nil
			rec.State, rec.LastError = status.StateUnknown, ""
		}
		rec.Preview.Author, rec.Preview.Trusted = head.Author, head.TrustedAuthor
		rec.Preview.Head, rec.Preview.Expires = head, now.Add(tpl.TTL().D())
	})
	if fresh {
		r.log.Info().Str("environment", name).Int("pull_request", head.PullRequest).Str("author", head.Author).
			Bool("trusted_author", head.TrustedAuthor).Msg("preview environment created")
	}
	r.offerPreviewEnv(ctx, w, head)
}

// refreshPreviews is called with every revision of a followed branch that
// loaded: the preview environments of its source get their template's
// newest settings (and, after a restart, their worker back); those whose
// template it no longer declares are torn down.
func (r *Reconciler) refreshPreviews(ctx context.Context, rev sources.Revision) {
	for _, lp := range r.previewStates(rev.Source, 0) {
		p := lp.p
		if r.template(p.Source, p.Template) == nil {
			r.endPreview(lp.name, fmt.Sprintf("template %s no longer declared by revision %s", p.Template, rev.Short()))
			continue
		}
		r.send(lp.name, request{kind: reqPreview, ctx: ctx, tg: target{rev: p.Head}})
	}
}

// offerPreviewEnv loads the preview environment at head and offers it to
// its worker, w, which calls it.
func (r *Reconciler) offerPreviewEnv(ctx context.Context, w *worker, head sources.Revision) {
	// resolve checks the head out again when its folder is gone (a
	// restart, or newer pushes to the pull request).
	tg, err := r.resolve(ctx, w.name, head)
	if err != nil {
		r.log.Error().Str("environment", w.name).Str("revision", head.Short()).Err(err).Msg("preview environment does not load")
		r.update(w.st, func(rec *store.EnvRecord) { rec.LastError = err.Error() })
		return
	}
	offer(w.slot, tg)
}

// loadPreviews loads, for rev (a pull request's head), every live preview
// environment of that pull request: each from its template as the source
// now declares it, with the hosts its provisioner created. Nothing runs.
// Unless its author is trusted, each requires an approval of each commit.
func (r *Reconciler) loadPreviews(rev sources.Revision) (*config.Revision, error) {
	if r.opts.LoadPreview == nil {
		return nil, errors.New("preview environments are not supported by this daemon (no preview loader)")
	}
	out := &config.Revision{}
	var errs []error
	for _, lp := range r.previewStates(rev.Source, rev.PullRequest) {
		name, p := lp.name, lp.p
		tpl := r.template(p.Source, p.Template)
		if tpl == nil {
			errs = append(errs, fmt.Errorf("preview %s: template %s is not declared by source %s (yet)", name, p.Template, p.Source))
			continue
		}
		cfg, err := r.opts.LoadPreview(rev.Dir, &config.PreviewLoad{Template: tpl, Name: name, Hosts: p.Hosts})
		if err != nil {
			errs = append(errs, fmt.Errorf("preview %s: %w", name, err))
			continue
		}
		env := cfg.Environment(name)
		if env == nil {
			continue
		}
		// The approval gate of a preview: the template's approvers decide
		// by comment, a token with the approve scope by the API.
		if !p.Trusted {
			a := config.Approval{Required: true}
			if tpl.Approval != nil {
				a.Approvers, a.Pos = tpl.Approval.Approvers, tpl.Approval.Pos
			}
			env.Approval = &a
		} else {
			env.Approval = nil
		}
		out.Environments = append(out.Environments, env)
	}
	if len(out.Environments) == 0 {
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("no preview environment of pull request %d of source %s", rev.PullRequest, rev.Source))
		}
		return nil, fmt.Errorf("load revision %s of %s: %w", rev.Short(), rev.Source, errors.Join(errs...))
	}
	for _, err := range errs {
		r.log.Error().Str("source", rev.Source).Str("revision", rev.Short()).Err(err).Msg("preview environment does not load")
	}
	return out, nil
}

// isPreviewEnvRevision reports whether rev is the revision of a preview
// environment (a pull request's head to apply, not a plan-only preview).
func isPreviewEnvRevision(rev sources.Revision) bool {
	return rev.PullRequest > 0 && !rev.Preview && !rev.Closed
}

// provisionPreview creates the hosts of a preview environment before its
// first rollout (tg's commit passed its gates) and loads tg again with
// them. Environments that are no preview, or whose hosts exist, are left
// as they are. Only the environment's worker calls it.
func (r *Reconciler) provisionPreview(ctx context.Context, st *envState, tg *target) error {
	var p store.PreviewRecord
	if st.rec.Preview != nil {
		p = *st.rec.Preview
	}
	if p.Template == "" || p.Created != nil {
		return nil
	}
	tpl := r.template(p.Source, p.Template)
	switch {
	case tpl == nil || tpl.Provision == nil:
		return fmt.Errorf("provision %s: template %s is not declared by source %s", tg.env.Name, p.Template, p.Source)
	case r.opts.Provisioner == nil:
		return fmt.Errorf("provision %s: this daemon has no provisioner", tg.env.Name)
	}
	log := r.log.With().Str("environment", tg.env.Name).Str("revision", tg.rev.Short()).Logger()
	created, hosts, err := r.opts.Provisioner.Create(ctx, tpl.Provision, previewVars(tg.env.Name, p, tg.rev.Commit))
	if err != nil {
		// The command and what it printed are the operators' (the log):
		// the run's error is reported to the pull request.
		log.Error().Err(err).Msg("preview hosts not created")
		return fmt.Errorf("provision %s: %w", tg.env.Name, errProvisionFailed("create"))
	}
	if created == nil {
		created = []byte{}
	}
	r.update(st, func(rec *store.EnvRecord) {
		rec.Preview.Provision, rec.Preview.Created, rec.Preview.Hosts = tpl.Provision, created, hosts
	})
	log.Info().Int("hosts", len(hosts)).Msg("preview hosts created")
	cfg, err := r.load(tg.rev, true)
	if err != nil {
		return fmt.Errorf("provision %s: %w", tg.env.Name, err)
	}
	env := cfg.Environment(tg.env.Name)
	if env == nil {
		return fmt.Errorf("provision %s: environment not loaded", tg.env.Name)
	}
	tg.env = env
	return nil
}

// errProvisionFailed is what leaves the daemon (reports to the pull
// request, the run's error) of a provision command that failed: which one,
// not its text or output (they may hold credentials), which the log and,
// for destroy, the API's preview.destroy_error keep for operators.
func errProvisionFailed(which string) error {
	return fmt.Errorf("the template's %s command failed (the daemon's log says why)", which)
}

// previewVars are the variables of a preview's provision commands.
func previewVars(name string, p store.PreviewRecord, commit string) map[string]string {
	return map[string]string{
		"DRIFTLESS_ENVIRONMENT":  name,
		"DRIFTLESS_TEMPLATE":     p.Template,
		"DRIFTLESS_PULL_REQUEST": strconv.Itoa(p.PullRequest),
		"DRIFTLESS_COMMIT":       commit,
	}
}

// endPreview has the preview environment's worker end it after the
// requests it has queued: mark it removed, then destroy its hosts. Only
// the first end counts.
func (r *Reconciler) endPreview(name, why string) {
	r.retire(name, request{end: why})
}

// closePreviews tears down the preview environments of a closed (or
// merged) pull request.
func (r *Reconciler) closePreviews(rev sources.Revision) {
	for _, lp := range r.previewStates(rev.Source, rev.PullRequest) {
		r.endPreview(lp.name, fmt.Sprintf("pull request %d closed", rev.PullRequest))
	}
}

// expirePreview ends a preview environment whose time to live ran out; it
// reports whether it did (the worker then ends). Called by the worker at
// each drift tick. Only the first end counts (a close as the time to live
// runs out): the close's retirement finds it ended.
func (r *Reconciler) expirePreview(ctx context.Context, w *worker) bool {
	st := w.st
	p := st.rec.Preview
	due := p != nil && p.Ended == "" && st.rec.State != status.StateRemoved && !r.now().Before(p.Expires)
	if !due {
		return false
	}
	r.mu.Lock()
	r.detachLocked(w)
	r.mu.Unlock()
	return r.retireNow(ctx, w, request{end: "time to live ran out"})
}

// teardownPreview destroys the hosts of a preview environment that
// ended, once it is marked removed (so no pass touches them any more). A
// destroy that fails is logged, reported once and recorded, then tried
// again every drift interval until it succeeds or the daemon stops; the
// next start takes it up again (resumeTeardowns).
func (r *Reconciler) teardownPreview(ctx context.Context, st *envState) {
	var p store.PreviewRecord
	if st.rec.Preview != nil {
		p = *st.rec.Preview
	}
	name := st.rec.Name
	if p.Ended == "" || p.Destroyed {
		return
	}
	log := r.log.With().Str("environment", name).Int("pull_request", p.PullRequest).Logger()
	failed := false
	for {
		var err error
		if p.Created != nil {
			if p.Provision == nil || r.opts.Provisioner == nil {
				err = errors.New("no provisioner to destroy them")
			} else {
				err = r.opts.Provisioner.Destroy(ctx, p.Provision, previewVars(name, p, p.Head.Commit), p.Created)
			}
		}
		r.update(st, func(rec *store.EnvRecord) {
			if rec.Preview == nil {
				return
			}
			rec.Preview.Destroyed, rec.Preview.DestroyError = err == nil, ""
			if err != nil {
				rec.Preview.DestroyError = err.Error()
			}
		})
		if err == nil {
			log.Info().Str("reason", p.Ended).Int("hosts", len(p.Hosts)).Msg("preview environment removed, its hosts destroyed")
			r.report(status.Report{Environment: name, Source: p.Source, Commit: p.Head.Commit, Status: status.StatusRemoved, PullRequest: p.PullRequest,
				Description: "preview removed: " + p.Ended})
			r.forgetSeries(name)
			return
		}
		log.Error().Err(err).Msg("preview hosts not destroyed; trying again")
		if !failed {
			failed = true
			r.report(status.Report{Environment: name, Source: p.Source, Commit: p.Head.Commit, Status: status.StatusFailure, PullRequest: p.PullRequest,
				Description: "preview hosts not destroyed: " + errProvisionFailed("destroy").Error() + "; tried again every drift interval"})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.interval(st)):
		}
	}
}

// resumeTeardowns takes up, at start, the teardowns of the previews that
// ended but whose hosts were not destroyed yet: each on its worker.
func (r *Reconciler) resumeTeardowns() {
	r.mu.Lock()
	pending := map[string]string{}
	for name, st := range r.envs {
		if p := st.snap.Load().rec.Preview; p != nil && p.Ended != "" && !p.Destroyed {
			pending[name] = p.Source
		}
	}
	r.mu.Unlock()
	for name, src := range pending {
		r.retire(name, request{rev: sources.Revision{Source: src, Closed: true}})
	}
}

// previewRemovedReason is the error a removed preview environment shows.
func previewRemovedReason(rec store.EnvRecord) string {
	if rec.Preview == nil || rec.Preview.Ended == "" {
		return ""
	}
	return "preview removed: " + rec.Preview.Ended
}

// previewCommentRefused says why a pull request comment may not decide
// for env ("" when it may): a preview environment takes decisions from
// comments on its own pull request only.
func previewCommentRefused(rec store.EnvRecord, ev sources.Event) string {
	if p := rec.Preview; p != nil && ev.PullRequest != p.PullRequest {
		return fmt.Sprintf("%s is the preview of pull request %d, not of %d", rec.Name, p.PullRequest, ev.PullRequest)
	}
	return ""
}

func previewStatus(rec store.EnvRecord) *status.PreviewStatus {
	p := rec.Preview
	if p == nil {
		return nil
	}
	s := &status.PreviewStatus{Template: p.Template, Source: p.Source, PullRequest: p.PullRequest, Author: p.Author, Trusted: p.Trusted,
		Head: p.Head.Commit, Expires: p.Expires, Ended: p.Ended, DestroyError: p.DestroyError}
	for _, h := range p.Hosts {
		s.Hosts = append(s.Hosts, h.Name)
	}
	return s
}

// forgetSeries deletes every series of a preview environment whose hosts
// were destroyed: pull requests come and go, and their environments must
// not add series without end. (Its record and history stay in the store.)
func (r *Reconciler) forgetSeries(name string) {
	env := prometheus.Labels{"environment": name}
	m := r.m
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.reconcileTotal, m.duration, m.envInfo, m.lastApplied, m.changes, m.drift, m.driftOldest, m.verification,
		m.tests, m.rollbacks, m.endRefused, m.hostUp, m.blocked, m.notReady, m.pending, m.pendingSince} {
		v.DeletePartialMatch(env)
	}
}

// seriesForgotten reports whether rec is a preview environment whose
// series were dropped for good (New does not bring them back).
func seriesForgotten(rec store.EnvRecord) bool {
	return rec.Preview != nil && rec.Preview.Destroyed && rec.State == status.StateRemoved
}
