package sources

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// hashTree hashes a folder: every path (relative, with slashes), its type and
// permission bits, and its content (a symlink's target), in lexical order.
// skip reports folders left out (".git", the state folder).
func hashTree(root string, skip func(path string, d fs.DirEntry) bool) (string, error) {
	sum := sha256.New()
	err := walkKept(root, skip, func(path, rel string, info fs.FileInfo) error {
		mode := info.Mode()
		var content string
		var err error
		switch {
		case mode.IsRegular():
			if content, err = hashFile(path); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			if content, err = os.Readlink(path); err != nil {
				return err
			}
		case mode.IsDir():
		default:
			// Sockets, pipes and devices are not configuration.
			return nil
		}
		fmt.Fprintf(sum, "%q %o %q\n", filepath.ToSlash(rel), uint32(mode.Type()|mode.Perm()), content)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash folder %s: %w", root, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyTree copies root into dst (which must not exist): folders, regular
// files with their permission bits, and symlinks as symlinks.
//
// Folders are created writable and given their exact permission bits once
// everything is copied, deepest first: the umask must not narrow them (the
// hash includes them) and a read-only folder must still be filled.
func copyTree(root, dst string, skip func(path string, d fs.DirEntry) bool) error {
	type folder struct {
		path string
		perm fs.FileMode
	}
	var folders []folder
	err := walkKept(root, skip, func(path, rel string, info fs.FileInfo) error {
		target := filepath.Join(dst, rel)
		mode := info.Mode()
		switch {
		case mode.IsDir():
			folders = append(folders, folder{target, mode.Perm()})
			return os.MkdirAll(target, 0o700)
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case mode.IsRegular():
			return copyFile(path, target, mode.Perm())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(folders) - 1; i >= 0; i-- {
		if err := os.Chmod(folders[i].path, folders[i].perm); err != nil {
			return err
		}
	}
	return nil
}

// walkKept calls fn for root and everything under it that skip does not
// leave out, with the path relative to root and its (unfollowed) info.
// hashTree and copyTree share it so that what is hashed is exactly what is
// copied.
func walkKept(root string, skip func(path string, d fs.DirEntry) bool, fn func(path, rel string, info fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && skip(path, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(path, rel, info)
	})
}

func copyFile(src, dst string, perm fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	// The umask may have narrowed the permission bits; the hash includes them.
	return out.Chmod(perm)
}
