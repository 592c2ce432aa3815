package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
)

// defaultMaxPacks is how many pack files the cache repository may collect
// before it is compacted. Every fetch that brings something writes one
// pack, and go-git reads every pack's index on lookups, so a daemon that
// runs for months would slow down and grow without this.
const defaultMaxPacks = 64

// packCount counts the pack files of the cache repository.
func (g *Git) packCount() int {
	packs, _ := filepath.Glob(filepath.Join(g.dir, "repo.git", "objects", "pack", "*.pack"))
	return len(packs)
}

// compact replaces the cache repository by a fresh clone of the followed
// ref, which arrives as one pack that the Git server built. That is much
// cheaper than go-git repacking locally (measured: minutes and hundreds of
// MiB for a 20,000-commit history). The new repository is built beside the
// old one and swapped in by renames; on failure the old one stays.
func (g *Git) compact(ctx context.Context) error {
	path := filepath.Join(g.dir, "repo.git")
	fresh := path + ".compact"
	old := path + ".old"
	_ = os.RemoveAll(fresh)
	_ = os.RemoveAll(old)
	repo, err := git.PlainInit(fresh, true)
	if err != nil {
		return fmt.Errorf("compact cache repository: %w", err)
	}
	spec := gitconfig.RefSpec(fmt.Sprintf("+%s:%s", g.remoteRef, g.localRef))
	if err := g.fetch(ctx, repo, spec); err != nil {
		_ = os.RemoveAll(fresh)
		return fmt.Errorf("compact cache repository: %w", err)
	}
	if err := os.Rename(path, old); err != nil {
		_ = os.RemoveAll(fresh)
		return fmt.Errorf("compact cache repository: %w", err)
	}
	if err := os.Rename(fresh, path); err != nil {
		// Put the old repository back so the source keeps working.
		_ = os.Rename(old, path)
		return fmt.Errorf("compact cache repository: %w", err)
	}
	// Pull request refs go with the old repository; they are fetched
	// again when a webhook asks for a preview.
	_ = os.RemoveAll(old)
	return nil
}

// maybeCompact compacts the cache repository when it has too many packs.
// A failure is only logged: the old repository still works.
func (g *Git) maybeCompact(ctx context.Context) {
	n := g.packCount()
	if n <= g.maxPacks {
		return
	}
	g.log.Info().Int("packs", n).Msg("compacting the cache repository")
	if err := g.compact(ctx); err != nil {
		g.log.Warn().Err(err).Msg("compact the cache repository")
	}
}
