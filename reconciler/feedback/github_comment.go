package feedback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-github/v60/github"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// comment adds or edits the plan comment of r's environment on its pull request.
func (g *GitHub) comment(ctx context.Context, r status.Report) error {
	unlock := g.lock(fmt.Sprintf("comment\x00%d\x00%s", r.PullRequest, r.Environment))
	defer unlock()
	body := renderPlanComment(r)
	id, err := g.findComment(ctx, r.PullRequest, planMarker(r.Environment))
	if err != nil {
		return err
	}
	return g.backoff.Do(ctx, func(ctx context.Context) error {
		if id != 0 {
			_, resp, err := g.client.Issues.EditComment(ctx, g.owner, g.repo, id, &github.IssueComment{Body: github.String(body)})
			if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
				return classify(fmt.Sprintf("edit comment %d", id), err)
			}
			// Someone deleted the comment since it was listed: add a new one.
			id = 0
		}
		_, _, err := g.client.Issues.CreateComment(ctx, g.owner, g.repo, r.PullRequest, &github.IssueComment{Body: github.String(body)})
		return classify("create comment", err)
	})
}

// maxPulls bounds the pull requests of one commit that get its comment.
const maxPulls = 5

// commentPulls puts the plan of a revision awaiting approval in the plan
// comment of each pull request GitHub associates with its commit ("list
// pull requests associated with a commit": the merged pull request that
// brought it to the default branch), where approvers can answer it.
func (g *GitHub) commentPulls(ctx context.Context, r status.Report) error {
	var prs []*github.PullRequest
	err := g.backoff.Do(ctx, func(ctx context.Context) error {
		var err error
		prs, _, err = g.client.PullRequests.ListPullRequestsWithCommit(ctx, g.owner, g.repo, r.Commit, &github.ListOptions{PerPage: maxPulls})
		return classify("list pull requests of commit "+kit.Abbrev(r.Commit), err)
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, pr := range prs[:min(len(prs), maxPulls)] {
		if pr.GetNumber() <= 0 {
			continue
		}
		rp := r
		rp.PullRequest = pr.GetNumber()
		if err := g.comment(ctx, rp); err != nil {
			errs = append(errs, fmt.Errorf("pull request %d: %w", pr.GetNumber(), err))
		}
	}
	return errors.Join(errs...)
}

// findComment pages through the pull request's comments for the one that
// starts with marker; 0 when there is none. Only a comment that starts
// with it counts, so a reply quoting the plan is never taken for it.
func (g *GitHub) findComment(ctx context.Context, pr int, marker string) (int64, error) {
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		var page []*github.IssueComment
		var resp *github.Response
		err := g.backoff.Do(ctx, func(ctx context.Context) error {
			var err error
			page, resp, err = g.client.Issues.ListComments(ctx, g.owner, g.repo, pr, opts)
			return classify(fmt.Sprintf("list comments of pull request %d", pr), err)
		})
		if err != nil {
			return 0, err
		}
		for _, c := range page {
			if strings.HasPrefix(strings.TrimSpace(c.GetBody()), marker) {
				return c.GetID(), nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}

// keyLock is a mutex shared by the callers working on one key.
type keyLock struct {
	mu    sync.Mutex
	users int
}

// lock takes the lock of key and returns its release; the entry is removed
// when its last user leaves, so the map stays as small as the work in flight.
func (g *GitHub) lock(key string) func() {
	g.mu.Lock()
	l := g.locks[key]
	if l == nil {
		l = &keyLock{}
		g.locks[key] = l
	}
	l.users++
	g.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		g.mu.Lock()
		if l.users--; l.users == 0 {
			delete(g.locks, key)
		}
		g.mu.Unlock()
	}
}
