package sources

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
)

type testLocal struct {
	*Local
	reg  *prometheus.Registry
	root string
}

func newTestLocal(t *testing.T, root string, interval, debounce time.Duration) *testLocal {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := NewLocal(LocalOptions{
		Name:       "dev",
		Config:     config.Local{Path: root, Interval: config.Duration(interval)},
		Dir:        filepath.Join(t.TempDir(), "state"),
		Logger:     zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
		Registerer: reg,
		Debounce:   debounce,
	})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return &testLocal{Local: l, reg: reg, root: root}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocalWatchesEdits(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "environments/dev.yaml"), "v1\n")
	write(t, filepath.Join(root, ".git/HEAD"), "ignored\n")
	if err := os.Symlink("environments/dev.yaml", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	// The interval is an hour: only the watch can bring the later revisions.
	l := newTestLocal(t, root, time.Hour, 50*time.Millisecond)
	out := run(t, l)
	first := receive(t, out, 10*time.Second)
	if first.Source != "dev" || len(first.Commit) != 64 {
		t.Fatalf("first revision %+v", first)
	}
	if got := readFile(t, filepath.Join(first.Dir, "environments/dev.yaml")); got != "v1\n" {
		t.Errorf("snapshot content %q", got)
	}
	if target, err := os.Readlink(filepath.Join(first.Dir, "link")); err != nil || target != "environments/dev.yaml" {
		t.Errorf("symlink in snapshot: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(first.Dir, ".git")); !os.IsNotExist(err) {
		t.Errorf(".git copied into the snapshot: %v", err)
	}

	// An edit gives a new revision; the old snapshot is untouched.
	write(t, filepath.Join(root, "environments/dev.yaml"), "v2\n")
	second := receive(t, out, 10*time.Second)
	if second.Commit == first.Commit || readFile(t, filepath.Join(second.Dir, "environments/dev.yaml")) != "v2\n" {
		t.Fatalf("second revision %+v", second)
	}
	if got := readFile(t, filepath.Join(first.Dir, "environments/dev.yaml")); got != "v1\n" {
		t.Errorf("first snapshot changed to %q", got)
	}

	// Rewriting the same content fires events but changes nothing.
	write(t, filepath.Join(root, "environments/dev.yaml"), "v2\n")
	expectNone(t, out, 400*time.Millisecond)

	// A folder created after the start is watched too.
	write(t, filepath.Join(root, "roles/web/files/app.env"), "PORT=1\n")
	third := receive(t, out, 10*time.Second)
	if got := readFile(t, filepath.Join(third.Dir, "roles/web/files/app.env")); got != "PORT=1\n" {
		t.Errorf("new folder content %q", got)
	}
	write(t, filepath.Join(root, "roles/web/files/app.env"), "PORT=2\n")
	fourth := receive(t, out, 10*time.Second)
	if got := readFile(t, filepath.Join(fourth.Dir, "roles/web/files/app.env")); got != "PORT=2\n" {
		t.Errorf("edit in new folder %q", got)
	}

	// A mode change is a change.
	if err := os.Chmod(filepath.Join(root, "roles/web/files/app.env"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifth := receive(t, out, 10*time.Second)
	if fi, err := os.Stat(filepath.Join(fifth.Dir, "roles/web/files/app.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode in snapshot: %v %v", fi, err)
	}
	// Kept: the current snapshot and the last two handed to the reader.
	entries, err := os.ReadDir(filepath.Join(l.dir, "snapshots"))
	if err != nil || len(entries) != 3 {
		t.Errorf("snapshots = %v, %v; want 3", entries, err)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Errorf("first snapshot still there: %v", err)
	}
}

func TestLocalResyncWithoutEvents(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a"), "1")
	// Events would only be read after an hour of quiet: the periodic resync
	// alone must find the change.
	l := newTestLocal(t, root, 150*time.Millisecond, time.Hour)
	out := run(t, l)
	first := receive(t, out, 10*time.Second)
	expectNone(t, out, 400*time.Millisecond)
	write(t, filepath.Join(root, "a"), "2")
	second := receive(t, out, 10*time.Second)
	if second.Commit == first.Commit || readFile(t, filepath.Join(second.Dir, "a")) != "2" {
		t.Fatalf("resync revision %+v", second)
	}
}

func TestLocalMissingFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "later")
	l := newTestLocal(t, root, 100*time.Millisecond, 50*time.Millisecond)
	out := run(t, l)
	eventually(t, 10*time.Second, "source_up 0 for a missing folder", func() bool {
		return gauge(t, l.reg, "driftless_source_up") == 0
	})
	expectNone(t, out, 200*time.Millisecond)
	write(t, filepath.Join(root, "x"), "y")
	rev := receive(t, out, 10*time.Second)
	if readFile(t, filepath.Join(rev.Dir, "x")) != "y" {
		t.Fatalf("revision %+v", rev)
	}
	if up := gauge(t, l.reg, "driftless_source_up"); up != 1 {
		t.Errorf("source_up = %v", up)
	}
}
