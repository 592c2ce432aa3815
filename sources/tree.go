package sources

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeEntry is a file as its tree lists it; no content is read.
type treeEntry struct {
	hash plumbing.Hash
	mode filemode.FileMode
}

// listTree returns every file of tree (path with slashes → entry), reading
// only tree objects.
func listTree(tree *object.Tree) (map[string]treeEntry, error) {
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	files := map[string]treeEntry{}
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list tree: %w", err)
		}
		if e.Mode != filemode.Dir {
			files[name] = treeEntry{hash: e.Hash, mode: e.Mode}
		}
	}
}

// linkBase is an earlier checkout whose unchanged files are hard-linked
// instead of written again: creating a file costs twenty times more than
// linking one on the disks measured, and unchanged files need no blob read.
// Checkouts are never modified, so sharing inodes between them is safe.
type linkBase struct {
	dir   string
	files map[string]treeEntry
}

// writeTree writes every file of tree under dir: regular files, executables
// and symlinks (submodules are skipped). Symlinks are created last so that
// no file is ever written through one, and every path is checked to stay
// inside dir, whatever a hostile repository contains.
func writeTree(s storer.EncodedObjectStorer, tree *object.Tree, dir string, base *linkBase) error {
	files, err := listTree(tree)
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type link struct{ path, target string }
	var links []link
	for _, p := range paths {
		e := files[p]
		if err := checkTreePath(p); err != nil {
			return err
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		var perm os.FileMode
		switch e.mode {
		case filemode.Symlink:
			target, err := blobContent(s, e.hash)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", p, err)
			}
			links = append(links, link{full, target})
			continue
		case filemode.Regular, filemode.Deprecated:
			perm = 0o644
		case filemode.Executable:
			perm = 0o755
		default:
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("create folder of %s: %w", p, err)
		}
		if base != nil && base.files[p] == e {
			if err := os.Link(filepath.Join(base.dir, filepath.FromSlash(p)), full); err == nil {
				continue
			}
		}
		if err := writeBlob(s, e.hash, p, full, perm); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return fmt.Errorf("create folder of %s: %w", l.path, err)
		}
		if err := os.Symlink(l.target, l.path); err != nil {
			return fmt.Errorf("create symlink: %w", err)
		}
	}
	return nil
}

func blobContent(s storer.EncodedObjectStorer, h plumbing.Hash) (string, error) {
	blob, err := object.GetBlob(s, h)
	if err != nil {
		return "", err
	}
	r, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func writeBlob(s storer.EncodedObjectStorer, h plumbing.Hash, name, full string, perm os.FileMode) (err error) {
	blob, err := object.GetBlob(s, h)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	r, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", name, cerr)
		}
	}()
	if _, err := io.Copy(out, r); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// checkTreePath refuses paths that would leave the checkout folder or write
// into a ".git" folder.
func checkTreePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") {
		return fmt.Errorf("unsafe path %q in tree: %w", p, errUnsafePath)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(part, ".git") {
			return fmt.Errorf("unsafe path %q in tree: %w", p, errUnsafePath)
		}
	}
	return nil
}

var errUnsafePath = errors.New("path leaves the checkout")
