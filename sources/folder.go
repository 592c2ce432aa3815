package sources

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// FolderRevision describes a folder as it is now, for one-shot commands
// (`driftless plan DIR`): its commit is the hash of the tree, Git's own
// folder left out. Unlike the local source it takes no snapshot, so the
// folder must not change while the revision is in use.
func FolderRevision(name, dir string) (Revision, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Revision{}, fmt.Errorf("read folder %s: %w", dir, err)
	}
	sum, err := hashTree(abs, func(_ string, d fs.DirEntry) bool { return d.IsDir() && d.Name() == ".git" })
	if err != nil {
		// hashTree names the folder it hashes.
		return Revision{}, err
	}
	return Revision{Source: name, Commit: sum, Dir: abs, Time: time.Now()}, nil
}
