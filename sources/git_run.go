package sources

import (
	"context"
	"strings"
	"time"

	"github.com/driftless/driftless/internal/redact"
)

// request is what webhooks asked for since the last pass.
type request struct {
	// commit is the newest commit a push event named for the followed ref.
	commit string
	// prs are pull request heads to preview, newest event per number.
	prs map[int]prRequest
	// closed are pull requests whose previews can go.
	closed map[int]bool
}

type prRequest struct {
	number int
	ref    string
	commit string
	author string
}

// Run fetches at once, then every poll interval (±10% jitter), and at once
// again whenever Notify matched a webhook. A new commit on the followed ref
// is sent on out; pull request previews too. A failing fetch is retried
// with exponential backoff capped at the interval, and the last good
// revision stays in use: nothing is sent or retracted. When a webhook named
// a commit the remote does not show yet (a replica lagging behind the one
// that sent the webhook), the fetch is repeated a few times with backoff. Sending never blocks
// fetching: while the reader is busy, a newer revision replaces the one
// waiting. Run returns nil when ctx ends and never closes out.
func (g *Git) Run(ctx context.Context, out chan<- Revision) error {
	g.log.Info().Str("url", redact.URL(g.url)).Str("ref", g.remoteRef.String()).
		Dur("interval_ms", g.interval).Msg("git source started")
	var outbox outbox
	failures, wantTries, wanted := 0, 0, ""
	for {
		req := g.takeRequest()
		rev, err := g.pass(ctx, req.commit)
		if ctx.Err() != nil {
			return nil
		}
		wait := jitter(g.interval)
		if err == nil && g.wantMissing {
			if req.commit != wanted {
				wanted, wantTries = req.commit, 0
			}
			if wantTries < maxWantTries {
				// Ask again for the commit the webhook named, soon and with
				// backoff, unless a newer webhook has asked for another.
				wantTries++
				g.requeueWant(req.commit)
				wait = min(wait, backoff(wantTries, g.minBackoff, g.interval))
			}
		}
		if err != nil {
			failures++
			wait = backoff(failures, g.minBackoff, g.interval)
			g.log.Error().Err(err).Dur("retry_in_ms", wait).Msg("git fetch failed; keeping the last good revision")
		} else {
			failures = 0
			if rev != nil {
				if rev.Refused == "" {
					g.log.Info().Str("revision", rev.Commit).Msg("new revision")
				}
				outbox.putMain(*rev)
			}
		}
		for _, rev := range g.syncPreviews(ctx, req) {
			outbox.putPreview(rev)
		}
		passed := g.clock.Now()
		timer := g.clock.After(wait)
		// settled is armed when a webhook arrives within the settle time
		// of the last fetch: the fetch waits for it, and every webhook
		// until then folds into that one fetch.
		var settled <-chan time.Time
	waiting:
		for {
			next, ok := outbox.peek()
			var send chan<- Revision
			if ok {
				send = out
			}
			select {
			case <-ctx.Done():
				return nil
			case send <- next:
				outbox.pop()
				if !next.Preview && next.Refused == "" {
					g.keep.markSent(next.Commit)
				}
			case <-g.wake:
				if settled != nil {
					continue
				}
				if rest := g.settle - g.clock.Now().Sub(passed); rest > 0 {
					settled = g.clock.After(rest)
					continue
				}
				if g.dropKnown() {
					continue
				}
				break waiting
			case <-settled:
				settled = nil
				if g.dropKnown() {
					continue
				}
				break waiting
			case <-timer:
				break waiting
			}
		}
	}
}

// dropKnown clears what webhooks asked for when it is only the commit the
// followed ref already points to (webhooks that arrived while the fetch
// that brought it ran), and reports whether it did: then there is nothing
// to fetch. A pull request or a deleted ref still needs the fetch.
func (g *Git) dropKnown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.req
	if r.commit == "" || r.commit != g.head || len(r.prs) > 0 || len(r.closed) > 0 {
		return false
	}
	g.req = request{}
	return true
}

// pass fetches the followed ref once and records its metrics.
func (g *Git) pass(ctx context.Context, want string) (rev *Revision, err error) {
	start := g.clock.Now()
	defer func() {
		g.m.fetchDuration.WithLabelValues(g.name).Observe(timeSince(g.clock, start))
		if err != nil {
			g.setHead("")
			g.m.up.WithLabelValues(g.name).Set(0)
			return
		}
		g.m.up.WithLabelValues(g.name).Set(1)
		g.m.lastSuccess.WithLabelValues(g.name).Set(float64(g.clock.Now().UnixNano()) / 1e9)
	}()
	return g.syncMain(ctx, want)
}

// setHead records the commit the followed ref points to after a fetch
// ("" when the fetch failed).
func (g *Git) setHead(commit string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.head = commit
}

// maxWantTries bounds the extra fetches for a commit a webhook named but
// the remote does not show yet: with the default first backoff of one
// second they span about half a minute, after which polling takes over.
const maxWantTries = 5

// requeueWant asks for commit again at the next pass, unless a webhook
// named a newer one meanwhile.
func (g *Git) requeueWant(commit string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.req.commit == "" {
		g.req.commit = commit
	}
}

// takeRequest returns and clears what webhooks asked for.
func (g *Git) takeRequest() request {
	g.mu.Lock()
	defer g.mu.Unlock()
	req := g.req
	g.req = request{}
	return req
}

// Notify is called with every webhook event. It returns true when the event
// concerns this source: a push (or tag push) of the followed ref of the same
// repository, or a pull request opened, updated or reopened against the
// followed branch (previewed), or closed (its preview is dropped). A match
// schedules a fetch; bursts coalesce and the newest wins. The fetch starts
// at once, or, within the settle time (200 ms) of the last fetch, at
// its end, so that a flood of webhooks makes at most one more fetch than
// the one running. A push naming the commit the followed ref already
// points to matches but fetches nothing.
//
// A push that deletes the followed branch matches too: the fetch that
// follows fails, the source reports driftless_source_up 0 and keeps serving
// its last good revision until the branch exists again, since a vanished
// branch needs a human and must not undeploy anything.
func (g *Git) Notify(ev Event) bool {
	if !matchesRepo(g.key, ev.CloneURLs, ev.Repository) {
		return false
	}
	switch ev.Kind {
	case "push", "tag_push":
		if ev.Ref != g.remoteRef.String() {
			return false
		}
		g.mu.Lock()
		if !ev.Deleted && ev.Commit != "" && ev.Commit == g.head {
			// The ref already points there: nothing to fetch. A commit
			// other than the head, an older one included (a force-push
			// back), is fetched.
			g.mu.Unlock()
			return true
		}
		g.req.commit = ev.Commit
		if ev.Deleted {
			g.req.commit = ""
		}
		g.mu.Unlock()
		if ev.Deleted {
			g.log.Warn().Str("ref", ev.Ref).Msg("webhook says the followed ref was deleted; keeping the last good revision")
		}
	case "pull_request":
		if !g.remoteRef.IsBranch() || ev.PullRequest <= 0 ||
			strings.TrimPrefix(ev.BaseRef, "refs/heads/") != g.remoteRef.Short() {
			return false
		}
		g.mu.Lock()
		switch ev.Action {
		case "opened", "synchronize", "reopened":
			if why := g.previewRefused(ev); why != "" {
				g.mu.Unlock()
				g.log.Info().Int("pull_request", ev.PullRequest).Str("author", ev.Author).Str("reason", why).Msg("pull request not previewed")
				return false
			}
			if g.req.prs == nil {
				g.req.prs = map[int]prRequest{}
			}
			ref := ev.PullRef
			if ref == "" {
				// No pull request ref on this host: the source branch, when
				// the sender named one in this repository.
				ref = ev.HeadRef
			}
			g.req.prs[ev.PullRequest] = prRequest{number: ev.PullRequest, ref: ref, commit: ev.Commit, author: ev.Author}
		case "closed":
			if g.req.closed == nil {
				g.req.closed = map[int]bool{}
			}
			g.req.closed[ev.PullRequest] = true
			delete(g.req.prs, ev.PullRequest)
		default:
			g.mu.Unlock()
			return false
		}
		g.mu.Unlock()
	default:
		return false
	}
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return true
}

// Want asks for commit at once, as a push naming it would: in a cluster,
// another replica saw the followed ref move there. The commit the ref
// already points to fetches nothing.
func (g *Git) Want(commit string) {
	g.mu.Lock()
	if commit == "" || commit == g.head {
		g.mu.Unlock()
		return
	}
	g.req.commit = commit
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// outbox holds the revisions not yet read: at most one of the followed ref
// (a newer one replaces it) and one per pull request.
type outbox struct {
	main     *Revision
	previews []Revision
}

func (o *outbox) putMain(r Revision) { o.main = &r }

func (o *outbox) putPreview(r Revision) {
	for i := range o.previews {
		if o.previews[i].PullRequest == r.PullRequest {
			o.previews[i] = r
			return
		}
	}
	o.previews = append(o.previews, r)
}

func (o *outbox) peek() (Revision, bool) {
	if o.main != nil {
		return *o.main, true
	}
	if len(o.previews) > 0 {
		return o.previews[0], true
	}
	return Revision{}, false
}

func (o *outbox) pop() {
	if o.main != nil {
		o.main = nil
		return
	}
	if len(o.previews) > 0 {
		o.previews = o.previews[1:]
	}
}
