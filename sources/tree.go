package sources

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// writeTree writes every file of tree under dir: regular files, executables
// and symlinks (submodules are skipped). Symlinks are created last so that
// no file is ever written through one, and every path is checked to stay
// inside dir, whatever a hostile repository contains.
func writeTree(tree *object.Tree, dir string) error {
	type link struct{ path, target string }
	var links []link
	err := tree.Files().ForEach(func(f *object.File) error {
		if err := checkTreePath(f.Name); err != nil {
			return err
		}
		full := filepath.Join(dir, filepath.FromSlash(f.Name))
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", f.Name, err)
			}
			links = append(links, link{full, target})
			return nil
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
		default:
			return nil
		}
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("create folder of %s: %w", f.Name, err)
		}
		return writeBlob(f, full, perm)
	})
	if err != nil {
		return err
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

func writeBlob(f *object.File, full string, perm os.FileMode) (err error) {
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", f.Name, cerr)
		}
	}()
	if _, err := io.Copy(out, r); err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
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
