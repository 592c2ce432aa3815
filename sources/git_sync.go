package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/driftless/driftless/internal/redact"
)

// openRepo opens the source's bare repository, creating it on first use.
// It is reopened on every pass, which is cheap, so that no state survives
// between passes except what is on disk.
func (g *Git) openRepo() (*git.Repository, error) {
	path := filepath.Join(g.dir, "repo.git")
	repo, err := git.PlainOpen(path)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(path, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open cache repository %s: %w", path, err)
	}
	return repo, nil
}

// fetch brings the refspecs' refs into repo. Already up to date is fine.
func (g *Git) fetch(ctx context.Context, repo *git.Repository, specs ...gitconfig.RefSpec) error {
	ctx, cancel := context.WithTimeout(ctx, g.fetchTimeout)
	defer cancel()
	remote := git.NewRemote(repo.Storer, &gitconfig.RemoteConfig{Name: "origin", URLs: []string{g.url}})
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Auth:       g.auth,
		CABundle:   g.caBundle,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	var noMatch git.NoMatchingRefSpecError
	if errors.As(err, &noMatch) {
		return fmt.Errorf("fetch %s from %s: %w: %w", specs[0].Src(), redact.URL(g.url), ErrRefNotFound, g.redact.Err(err))
	}
	return fmt.Errorf("fetch %s from %s: %w", specs[0].Src(), redact.URL(g.url), g.redact.Err(err))
}

// ErrRefNotFound is wrapped by fetch errors when the followed branch or tag
// (or a pull request's ref) does not exist on the remote.
var ErrRefNotFound = errors.New("ref not found on the remote")

// resolveCommit returns the commit a local ref points to, peeling annotated
// tags.
func resolveCommit(repo *git.Repository, ref plumbing.ReferenceName) (*object.Commit, error) {
	r, err := repo.Reference(ref, true)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	hash := r.Hash()
	for range 10 {
		tag, err := repo.TagObject(hash)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tag %s: %w", ref, err)
		}
		hash = tag.Target
	}
	c, err := repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s of %s: %w", hash, ref, err)
	}
	return c, nil
}

// syncMain fetches the followed ref and returns a revision when its commit
// changed and is acceptable; nil when nothing changed (or the commit was
// refused). want is the commit a webhook named, if any.
func (g *Git) syncMain(ctx context.Context, want string) (*Revision, error) {
	g.wantMissing = false
	repo, err := g.openRepo()
	if err != nil {
		return nil, err
	}
	spec := gitconfig.RefSpec(fmt.Sprintf("+%s:%s", g.remoteRef, g.localRef))
	if err := g.fetch(ctx, repo, spec); err != nil {
		return nil, err
	}
	if g.packCount() > g.maxPacks {
		g.maybeCompact(ctx)
		if repo, err = g.openRepo(); err != nil {
			return nil, err
		}
	}
	commit, err := resolveCommit(repo, g.localRef)
	if err != nil {
		return nil, err
	}
	sha := commit.Hash.String()
	g.setHead(sha)
	if want != "" && want != sha {
		if _, err := repo.CommitObject(plumbing.NewHash(want)); err != nil {
			// The Git host announced a commit its ref does not show yet (a
			// replica behind the one that sent the webhook): Run fetches
			// again shortly instead of waiting for the next poll.
			g.wantMissing = true
			g.log.Info().Str("want", want).Str("revision", sha).
				Msg("webhook commit not found after fetch, using the ref's head")
		}
	}
	if sha == g.keep.current {
		// Back on the revision in use (a refused head reverted).
		g.m.headRefused.WithLabelValues(g.name).Set(0)
		return nil, nil
	}
	refused, fresh := g.accept(commit)
	g.m.headRefused.WithLabelValues(g.name).Set(b2f(refused != nil))
	if refused != nil {
		if !fresh {
			return nil, nil
		}
		// Sent once, so the reader can show the refusal; it counts as the
		// source's first revision too (the source works).
		return &Revision{Source: g.name, Commit: sha, Ref: g.remoteRef.String(), Time: g.clock.Now(),
			Refused: refused.Error()}, nil
	}
	tree, _, err := g.subTree(commit)
	if err != nil {
		return nil, err
	}
	if g.keep.current != "" && tree.Hash.String() == g.tree {
		// Nothing under the source's path changed (a commit to another
		// source's path, or to docs): no revision, so no observation, no
		// history entry, no new revision label.
		if !g.unchanged[sha] {
			g.unchanged[sha] = true
			g.log.Info().Str("revision", sha).Msg("commit changes nothing under the source's path; no new revision")
		}
		return nil, nil
	}
	dir, err := g.checkout(repo, commit, filepath.Join(g.dir, "checkouts", sha), g.linkBase(repo))
	if err != nil {
		return nil, err
	}
	g.keep.advance(sha)
	g.tree = tree.Hash.String()
	clear(g.unchanged)
	g.cleanCheckouts()
	return &Revision{Source: g.name, Commit: sha, Repo: RepoID(g.url), Ref: g.remoteRef.String(), Dir: dir, Time: g.clock.Now(), Tree: g.tree}, nil
}

// subTree returns the tree driftless reads from commit: the whole tree, or
// the configured sub-path's, with that sub-path as a relative folder.
func (g *Git) subTree(commit *object.Commit) (*object.Tree, string, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("read tree of %s: %w", commit.Hash, err)
	}
	if g.cfg.Path == "" {
		return tree, "", nil
	}
	sub := filepath.ToSlash(filepath.Clean(g.cfg.Path))
	if sub == "." {
		return tree, "", nil
	}
	if tree, err = tree.Tree(sub); err != nil {
		return nil, "", fmt.Errorf("path %q in commit %s: %w", g.cfg.Path, commit.Hash, ErrPathNotFound)
	}
	return tree, filepath.FromSlash(sub), nil
}

// linkBase returns the current checkout as a source of hard links, or nil
// when there is none usable.
func (g *Git) linkBase(repo *git.Repository) *linkBase {
	if g.keep.current == "" {
		return nil
	}
	commit, err := repo.CommitObject(plumbing.NewHash(g.keep.current))
	if err != nil {
		return nil
	}
	tree, rel, err := g.subTree(commit)
	if err != nil {
		return nil
	}
	dir := filepath.Join(g.dir, "checkouts", g.keep.current, rel)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	files, err := listTree(tree)
	if err != nil {
		return nil
	}
	return &linkBase{dir: dir, files: files}
}

// checkout writes commit's tree into dest (beside it first, then renamed)
// and returns the revision's folder: dest, or the sub-path inside it. With
// a sub-path only that folder is written (a monorepo's other parts are not
// driftless's business). Files unchanged since the current checkout are
// hard links to it. An existing dest is reused: checkouts are immutable,
// named by commit.
func (g *Git) checkout(repo *git.Repository, commit *object.Commit, dest string, base *linkBase) (string, error) {
	tree, rel, err := g.subTree(commit)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(dest, rel)
	if _, err := os.Stat(dest); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return "", fmt.Errorf("create checkouts folder: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("create checkout folder: %w", err)
	}
	fail := func(what string, err error) (string, error) {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("%s %s: %w", what, commit.Hash, err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, rel), 0o755); err != nil {
		return fail("check out", err)
	}
	if err := writeTree(repo.Storer, tree, filepath.Join(tmp, rel), base); err != nil {
		return fail("check out", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail("check out", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fail("publish checkout", err)
	}
	return dir, nil
}

// ErrPathNotFound is wrapped when the configured sub-path is not a folder
// of the commit.
var ErrPathNotFound = errors.New("path not found in the commit")

// cleanCheckouts removes every checkout the retention does not keep, and
// leftovers of interrupted checkouts.
func (g *Git) cleanCheckouts() {
	root := filepath.Join(g.dir, "checkouts")
	entries, err := os.ReadDir(root)
	if err != nil {
		g.log.Warn().Err(err).Msg("list checkouts for cleanup")
		return
	}
	for _, e := range entries {
		if g.keep.keeps(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			g.log.Warn().Err(err).Str("checkout", e.Name()).Msg("remove old checkout")
		}
	}
}

// timeSince is a helper for metrics in seconds.
func timeSince(c Clock, start time.Time) float64 { return c.Now().Sub(start).Seconds() }
