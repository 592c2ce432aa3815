package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// previewsKept is how many checkouts of one pull request are kept: the
// newest, and the one before it which a plan may still be reading.
const previewsKept = 2

// syncPreviews drops the previews of closed pull requests (and says so
// with a Closed revision, which ends their preview environments) and
// fetches the heads of the requested ones. A failing preview is logged
// and skipped: it never affects the followed ref.
func (g *Git) syncPreviews(ctx context.Context, req request) []Revision {
	var revs []Revision
	for n := range req.closed {
		g.dropPreview(n)
		revs = append(revs, Revision{Source: g.name, Repo: RepoID(g.url), Preview: true, PullRequest: n, Closed: true, Time: g.clock.Now()})
	}
	for _, pr := range req.prs {
		rev, err := g.syncPreview(ctx, pr)
		if err != nil {
			g.log.Error().Err(err).Int("pull_request", pr.number).Msg("pull request preview failed")
			continue
		}
		if rev != nil {
			revs = append(revs, *rev)
		}
	}
	return revs
}

// syncPreview fetches a pull request's head (its ref, else its commit id)
// and checks it out as a preview revision.
func (g *Git) syncPreview(ctx context.Context, pr prRequest) (*Revision, error) {
	repo, err := g.openRepo()
	if err != nil {
		return nil, err
	}
	local := plumbing.ReferenceName("refs/driftless/pull/" + strconv.Itoa(pr.number))
	fetched := false
	if pr.ref != "" {
		err = g.fetch(ctx, repo, gitconfig.RefSpec(fmt.Sprintf("+%s:%s", pr.ref, local)))
		fetched = err == nil
		if err != nil && pr.commit == "" {
			return nil, err
		}
	}
	if !fetched {
		if !plumbing.IsHash(pr.commit) {
			return nil, fmt.Errorf("pull request %d: no ref and no commit id to fetch", pr.number)
		}
		if err := g.fetch(ctx, repo, gitconfig.RefSpec(fmt.Sprintf("%s:%s", pr.commit, local))); err != nil {
			return nil, err
		}
	}
	commit, err := resolveCommit(repo, local)
	if err != nil {
		return nil, err
	}
	sha := commit.Hash.String()
	kept := g.previews[pr.number]
	if len(kept) > 0 && kept[len(kept)-1] == sha {
		return nil, nil
	}
	if refused, _ := g.accept(commit); refused != nil {
		return nil, nil
	}
	root := filepath.Join(g.dir, "previews", strconv.Itoa(pr.number))
	dir, err := g.checkout(repo, commit, filepath.Join(root, sha), g.linkBase(repo))
	if err != nil {
		return nil, fmt.Errorf("pull request %d: %w", pr.number, err)
	}
	kept = append(kept, sha)
	for len(kept) > previewsKept {
		if err := os.RemoveAll(filepath.Join(root, kept[0])); err != nil {
			g.log.Warn().Err(err).Int("pull_request", pr.number).Msg("remove old preview")
		}
		kept = kept[1:]
	}
	g.previews[pr.number] = kept
	ref := pr.ref
	if ref == "" {
		ref = local.String()
	}
	return &Revision{Source: g.name, Commit: sha, Repo: RepoID(g.url), Ref: ref, Dir: dir, Preview: true, PullRequest: pr.number,
		Author: pr.author, TrustedAuthor: pr.author != "" && slices.Contains(g.cfg.Previews.TrustedAuthors, pr.author), Time: g.clock.Now()}, nil
}

// dropPreview removes a closed pull request's checkouts and local ref.
func (g *Git) dropPreview(n int) {
	delete(g.previews, n)
	if err := os.RemoveAll(filepath.Join(g.dir, "previews", strconv.Itoa(n))); err != nil {
		g.log.Warn().Err(err).Int("pull_request", n).Msg("remove closed pull request's preview")
	}
	repo, err := g.openRepo()
	if err != nil {
		return
	}
	err = repo.Storer.RemoveReference(plumbing.ReferenceName("refs/driftless/pull/" + strconv.Itoa(n)))
	if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		g.log.Warn().Err(err).Int("pull_request", n).Msg("remove closed pull request's ref")
	}
}

// previewRefused says why the pull request of ev gets no preview, or ""
// when it does: a pull request from a fork needs previews.forks, and with
// previews.authors its author must be one of them. Everything else about
// a preview is read-only, but a preview still observes the hosts and
// reports what it saw, so who may ask for one is the operator's choice.
func (g *Git) previewRefused(ev Event) string {
	p := g.cfg.Previews
	if ev.Fork && !p.Forks {
		return "it comes from a fork (set previews.forks to preview those)"
	}
	if len(p.Authors) > 0 && !slices.Contains(p.Authors, ev.Author) {
		return "its author is not in previews.authors"
	}
	return ""
}
