package targets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no test of the package leaves a goroutine behind
// (the local transport's process plumbing, SSH sessions...).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLocalRun(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	tests := []struct {
		name, script, stdin string
		wantOut, wantErr    string
		wantExit            int
	}{
		{name: "stdout", script: "echo hello", wantOut: "hello\n"},
		{name: "stdin", script: "cat", stdin: "fed", wantOut: "fed"},
		{name: "root variable", script: `printf %s "$DRIFTLESS_ROOT"`, wantOut: root},
		{name: "exit status is not an error", script: "echo oops >&2; exit 3", wantErr: "oops\n", wantExit: 3},
		{name: "killed shell", script: "kill -9 $$", wantExit: 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Run(context.Background(), tc.script, []byte(tc.stdin))
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Stdout) != tc.wantOut || string(res.Stderr) != tc.wantErr || res.Exit != tc.wantExit {
				t.Fatalf("got out %q err %q exit %d, want %q %q %d", res.Stdout, res.Stderr, res.Exit, tc.wantOut, tc.wantErr, tc.wantExit)
			}
		})
	}
}

func TestLocalRunContextKillsChildren(t *testing.T) {
	l := NewLocal(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The background sleep holds stdout open: only killing the whole process
	// group lets Run return before the sleep ends.
	start := time.Now()
	_, err := l.Run(ctx, "sleep 30 & sleep 30", nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run returned after %s: the children were not killed", d)
	}
}

func TestLocalWriteFile(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(ctx, "/etc/app.conf", []byte("v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(root, "etc/app.conf")
	b, err := os.ReadFile(got)
	if err != nil || string(b) != "v1\n" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, _ := os.Stat(got)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 whatever the umask", fi.Mode())
	}
	// A path climbing out with ".." stays under the root.
	if err := l.WriteFile(ctx, "/../../etc/escape.conf", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/escape.conf")); err != nil {
		t.Fatalf("the path was not kept under the root: %v", err)
	}
	if err := l.WriteFile(ctx, "relative", []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("got %v, want a 'not absolute' error", err)
	}
	if err := l.WriteFile(ctx, "/missing/dir/f", []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v, want a missing folder error", err)
	}
	assertNoTemp(t, filepath.Join(root, "etc"))
}

// TestLocalWriteFileTorn fails the write between the fsync of the
// temporary file and its rename: the destination must keep its old
// content, whole, and no temporary file may be left.
func TestLocalWriteFileTorn(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	dst := filepath.Join(root, "app.conf")
	old := strings.Repeat("old line\n", 1000)
	if err := os.WriteFile(dst, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("power cut")
	var sawTemp string
	l.beforeRename = func(tmp string) error {
		b, err := os.ReadFile(tmp)
		if err != nil || !strings.HasPrefix(string(b), "new") {
			t.Errorf("temporary file not complete before rename: %v", err)
		}
		sawTemp = tmp
		return injected
	}
	err := l.WriteFile(context.Background(), "/app.conf", []byte(strings.Repeat("new line\n", 2000)), 0o644)
	if !errors.Is(err, injected) {
		t.Fatalf("got %v, want the injected error", err)
	}
	if filepath.Dir(sawTemp) != root {
		t.Fatalf("temporary file %s not beside the destination", sawTemp)
	}
	b, err := os.ReadFile(dst)
	if err != nil || string(b) != old {
		t.Fatalf("destination changed: %d bytes, %v", len(b), err)
	}
	fi, _ := os.Stat(dst)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("destination mode changed to %v", fi.Mode())
	}
	assertNoTemp(t, root)

	// The same transport writes fine once the failure is gone.
	l.beforeRename = nil
	if err := l.WriteFile(context.Background(), "/app.conf", []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "new\n" {
		t.Fatalf("content %q after a good write", b)
	}
	assertNoTemp(t, root)
}

func TestLocalWriteFileCancelled(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	dst := filepath.Join(root, "f")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.WriteFile(ctx, "/f", []byte("new"), 0o644); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Fatalf("content %q after a cancelled write", b)
	}
	assertNoTemp(t, root)
}

func TestLocalRedial(t *testing.T) {
	l := NewLocal(t.TempDir())
	tr, err := l.Redial(context.Background())
	if err != nil || tr.Root() != l.Root() {
		t.Fatalf("redial: %v, %v", tr, err)
	}
}

// assertNoTemp fails when a temporary file of WriteFile is left in dir.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".driftless-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

// TestLocalWriteFiles writes a batch in process: contents, modes and
// owners (by name and by number) as given. A batch failing at a file
// (its folder is missing, or its rename is refused) writes the files
// before it, leaves the others as they were and no temporary file.
func TestLocalWriteFiles(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	ctx := context.Background()
	files := []FileWrite{
		{Path: "/a", Data: []byte("a1"), Mode: 0o640},
		{Path: "/b", Data: []byte("b1"), Mode: 0o600, Owner: "nobody", Group: "nogroup"},
		{Path: "/c", Data: []byte("c1"), Mode: 0o644, Owner: "65534"},
	}
	if os.Geteuid() != 0 {
		files[1].Owner, files[1].Group, files[2].Owner = "", "", ""
	}
	if n, err := l.WriteFiles(ctx, files); n != 3 || err != nil {
		t.Fatalf("WriteFiles = %d, %v", n, err)
	}
	assertFile(t, filepath.Join(root, "a"), "a1", 0o640)
	assertFile(t, filepath.Join(root, "b"), "b1", 0o600)
	assertFile(t, filepath.Join(root, "c"), "c1", 0o644)
	if os.Geteuid() == 0 {
		assertOwner(t, filepath.Join(root, "b"), "65534", "65534")
		assertOwner(t, filepath.Join(root, "c"), "65534", "0")
	}

	second := []FileWrite{
		{Path: "/a", Data: []byte("a2"), Mode: 0o640},
		{Path: "/missing/x", Data: []byte("x"), Mode: 0o644},
		{Path: "/c", Data: []byte("c2"), Mode: 0o644},
	}
	n, err := l.WriteFiles(ctx, second)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "/missing/x") {
		t.Fatalf("a batch failing at its second file: %d, %v", n, err)
	}
	assertFile(t, filepath.Join(root, "a"), "a2", 0o640)
	assertFile(t, filepath.Join(root, "c"), "c1", 0o644)

	renames := 0
	l.beforeRename = func(string) error {
		if renames++; renames == 2 {
			return errors.New("refused")
		}
		return nil
	}
	second[1].Path = "/b"
	n, err = l.WriteFiles(ctx, second)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "write /b") {
		t.Fatalf("a batch whose second rename fails: %d, %v", n, err)
	}
	assertFile(t, filepath.Join(root, "b"), "b1", 0o600)
	assertFile(t, filepath.Join(root, "c"), "c1", 0o644)
	assertNoTemp(t, root)
}
