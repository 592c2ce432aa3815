package sources

import (
	"fmt"
	"os"
	"path/filepath"
)

// scan reads the folder once. It returns a revision when the tree changed,
// unstable when the tree changed while it was being copied (the copy is
// dropped and the caller reads again once things are quiet), and an error
// when the folder cannot be read (the last good revision stays).
func (l *Local) scan() (rev *Revision, unstable bool, err error) {
	start := l.clock.Now()
	defer func() {
		l.m.fetchDuration.WithLabelValues(l.name).Observe(timeSince(l.clock, start))
		if err != nil {
			l.m.up.WithLabelValues(l.name).Set(0)
			return
		}
		l.m.up.WithLabelValues(l.name).Set(1)
		l.m.lastSuccess.WithLabelValues(l.name).Set(float64(l.clock.Now().UnixNano()) / 1e9)
	}()
	if fi, err := os.Stat(l.root); err != nil {
		return nil, false, fmt.Errorf("read folder %s: %w", l.root, err)
	} else if !fi.IsDir() {
		return nil, false, fmt.Errorf("read folder %s: not a folder", l.root)
	}
	before, err := hashTree(l.root, l.skip)
	if err != nil {
		return nil, false, err
	}
	if before == l.keep.current {
		return nil, false, nil
	}
	snapshots := filepath.Join(l.dir, "snapshots")
	tmp, err := os.MkdirTemp(snapshots, ".tmp-")
	if err != nil {
		return nil, false, fmt.Errorf("create snapshot folder: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	copyDir := filepath.Join(tmp, "tree")
	if err := copyTree(l.root, copyDir, l.skip); err != nil {
		return nil, false, fmt.Errorf("snapshot folder %s: %w", l.root, err)
	}
	copied, err := hashTree(copyDir, func(string, os.DirEntry) bool { return false })
	if err != nil {
		return nil, false, err
	}
	after, err := hashTree(l.root, l.skip)
	if err != nil {
		return nil, false, err
	}
	if copied != after {
		return nil, true, nil
	}
	if copied == l.keep.current {
		return nil, false, nil
	}
	dest := filepath.Join(snapshots, copied)
	if _, err := os.Stat(dest); os.IsNotExist(err) {
		if err := os.Rename(copyDir, dest); err != nil {
			return nil, false, fmt.Errorf("publish snapshot: %w", err)
		}
	}
	l.keep.advance(copied)
	l.cleanSnapshots()
	return &Revision{Source: l.name, Commit: copied, Dir: dest, Time: l.clock.Now()}, false, nil
}

// cleanSnapshots removes the snapshots the retention does not keep.
func (l *Local) cleanSnapshots() {
	root := filepath.Join(l.dir, "snapshots")
	entries, err := os.ReadDir(root)
	if err != nil {
		l.log.Warn().Err(err).Msg("list snapshots for cleanup")
		return
	}
	for _, e := range entries {
		if l.keep.keeps(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			l.log.Warn().Err(err).Str("snapshot", e.Name()).Msg("remove old snapshot")
		}
	}
}
