package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
)

// restoredKept is how many checkouts made for manual rollbacks are kept.
// The newest is in use as the applied revision, so at least one must stay.
const restoredKept = 3

// Checkout gives back the checkout of a commit this source fetched before,
// for a manual rollback (or a restart) whose revision's folder was cleaned
// up. The commit is read from the source's cache repository, checked
// against the signing keys when they are configured, and written into its
// own folder under restored/, apart from the polling loop's checkouts so
// the two never clean up each other's folders.
func (g *Git) Checkout(ctx context.Context, rev Revision) (Revision, error) {
	if err := ctx.Err(); err != nil {
		return Revision{}, err
	}
	if rev.Source != g.name {
		return Revision{}, fmt.Errorf("checkout %s: revision of source %q, not %q", rev.Short(), rev.Source, g.name)
	}
	if len(rev.Commit) != 40 || !isHex(rev.Commit) {
		return Revision{}, fmt.Errorf("checkout of source %s: %q is not a full commit id", g.name, rev.Commit)
	}
	repo, err := g.openRepo()
	if err != nil {
		return Revision{}, err
	}
	commit, err := repo.CommitObject(plumbing.NewHash(rev.Commit))
	if err != nil {
		return Revision{}, fmt.Errorf("checkout %s of source %s: %w", rev.Short(), g.name, err)
	}
	if g.keyring != "" {
		if err := verifyCommit(commit, g.keyring); err != nil {
			return Revision{}, fmt.Errorf("checkout %s of source %s: %w", rev.Short(), g.name, err)
		}
	}
	root := filepath.Join(g.dir, "restored")
	dir, err := g.checkout(repo, commit, filepath.Join(root, rev.Commit), nil)
	if err != nil {
		return Revision{}, err
	}
	pruneRestored(root, rev.Commit, restoredKept)
	out := rev
	out.Dir, out.Repo = dir, RepoID(g.url)
	return out, nil
}

// pruneRestored keeps the newest restored checkouts (and keep itself).
func pruneRestored(root, keep string, n int) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type aged struct {
		name string
		mod  int64
	}
	var all []aged
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.Name() != keep {
			all = append(all, aged{e.Name(), info.ModTime().UnixNano()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for i, a := range all {
		if i >= n-1 {
			_ = os.RemoveAll(filepath.Join(root, a.name))
		}
	}
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
