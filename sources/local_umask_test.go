package sources

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLocalUnderStrictUmask: the shipped systemd unit runs the daemon with
// UMask=0027. Snapshot folders must still get the watched folders' exact
// modes, or the snapshot's hash never matches the tree and no revision is
// ever produced. Read-only folders are copied too.
func TestLocalUnderStrictUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	root := t.TempDir()
	write(t, filepath.Join(root, "environments/dev.yaml"), "v1\n")
	write(t, filepath.Join(root, "files/locked/app.conf"), "x\n")
	for dir, mode := range map[string]os.FileMode{"environments": 0o755, "files": 0o775, "files/locked": 0o555} {
		if err := os.Chmod(filepath.Join(root, dir), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "files/locked"), 0o755) })
	l := newTestLocal(t, root, time.Hour, 50*time.Millisecond)
	rev := receive(t, run(t, l), 10*time.Second)
	for dir, want := range map[string]os.FileMode{"environments": 0o755, "files": 0o775, "files/locked": 0o555} {
		fi, err := os.Stat(filepath.Join(rev.Dir, dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("snapshot folder %s has mode %v, want %v", dir, fi.Mode().Perm(), want)
		}
	}
	if got := readFile(t, filepath.Join(rev.Dir, "files/locked/app.conf")); got != "x\n" {
		t.Errorf("file in a read-only folder = %q", got)
	}
}
