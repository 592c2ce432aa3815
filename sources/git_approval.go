package sources

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// PullHead returns the head commit of the pull request an event (a
// comment) is about, at the time of the call: the pull request's ref
// (Event.PullRef: refs/pull/N/head, GitLab's refs/merge-requests/N/head)
// fetched from the Git server. A commit the payload names (GitLab's Note Hook names the
// merge request's last commit) is never trusted: the payload is only
// token-checked, and the head may have moved since it was sent. ok is
// false when the event is about another repository.
func (g *Git) PullHead(ctx context.Context, ev Event) (commit string, ok bool, err error) {
	if !matchesRepo(g.key, ev.CloneURLs, ev.Repository) || ev.PullRequest <= 0 {
		return "", false, nil
	}
	ref := ev.PullRef
	if ref == "" {
		return "", true, fmt.Errorf("pull request %d: %s publishes no pull request ref to read its head from", ev.PullRequest, ev.Provider)
	}
	repo, err := g.openRepo()
	if err != nil {
		return "", true, err
	}
	local := plumbing.ReferenceName("refs/driftless/approval/" + strconv.Itoa(ev.PullRequest))
	if err := g.fetch(ctx, repo, gitconfig.RefSpec(fmt.Sprintf("+%s:%s", ref, local))); err != nil {
		return "", true, fmt.Errorf("fetch the head of pull request %d: %w", ev.PullRequest, err)
	}
	c, err := resolveCommit(repo, local)
	if err != nil {
		return "", true, fmt.Errorf("read the head of pull request %d: %w", ev.PullRequest, err)
	}
	return c.Hash.String(), true, nil
}

// MergedFrom reports whether rev's commit brings exactly head: it is head
// (a fast-forward), or a merge commit whose parents are an unchanged base
// and head and whose tree is head's tree (nothing else came in with it).
func (g *Git) MergedFrom(_ context.Context, rev Revision, head string) (bool, error) {
	if rev.Commit == head {
		return true, nil
	}
	if rev.Source != g.name {
		return false, fmt.Errorf("merged from: revision of source %q, not %q", rev.Source, g.name)
	}
	if !plumbing.IsHash(rev.Commit) || !plumbing.IsHash(head) {
		return false, errors.New("merged from: not full commit ids")
	}
	repo, err := g.openRepo()
	if err != nil {
		return false, err
	}
	m, err := repo.CommitObject(plumbing.NewHash(rev.Commit))
	if err != nil {
		return false, fmt.Errorf("merged from: read %s: %w", rev.Short(), err)
	}
	if len(m.ParentHashes) != 2 || m.ParentHashes[1].String() != head {
		return false, nil
	}
	h, err := repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return false, fmt.Errorf("merged from: read %.12s: %w", head, err)
	}
	// An unchanged base: the base is an ancestor of head, so merging head
	// onto it yields head's tree and nothing else.
	return m.TreeHash == h.TreeHash, nil
}
