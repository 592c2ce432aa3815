package targets

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/need"
)

func TestFileConverges(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "app.conf")
	r := fileRes("/app.conf", FileSpec{Content: "a\nb\nc\n", Mode: "0640"})

	expectChange(t, l, r, Create, "--- /dev/null", "+++ b/app.conf", "+a\n")
	converge(t, l, r)
	assertFile(t, p, "a\nb\nc\n", 0o640)

	// Edited behind its back: the content diff shows the edit.
	writeTestFile(t, root, "/app.conf", "a\nB\nc\n", 0o640)
	expectChange(t, l, r, Update, "--- a/app.conf", "+++ b/app.conf", "@@ -1,3 +1,3 @@", "-B\n+b\n")
	converge(t, l, r)
	assertFile(t, p, "a\nb\nc\n", 0o640)

	// Chmodded behind its back.
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	c := expectChange(t, l, r, Update, "mode: 0777 -> 0640")
	if strings.Contains(c.Diff, "@@") {
		t.Fatalf("a mode change shows a content diff:\n%s", c.Diff)
	}
	converge(t, l, r)
	assertFile(t, p, "a\nb\nc\n", 0o640)

	// Removed behind its back.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Create)
	converge(t, l, r)
	assertFile(t, p, "a\nb\nc\n", 0o640)
}

func TestFileUndeclaredModeKept(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	writeTestFile(t, root, "/f", "old", 0o600)
	r := fileRes("/f", FileSpec{Content: "new"})
	c := expectChange(t, l, r, Update, "-old", "+new")
	if strings.Contains(c.Diff, "mode:") {
		t.Fatalf("an undeclared mode shows up in the diff:\n%s", c.Diff)
	}
	converge(t, l, r)
	assertFile(t, filepath.Join(root, "f"), "new", 0o600)

	// A new file without a declared mode gets 0644; a secret one, or a
	// secret env file, 0600.
	r2 := fileRes("/g", FileSpec{Content: ""})
	converge(t, l, r2)
	assertFile(t, filepath.Join(root, "g"), "", 0o644)
	converge(t, l, fileRes("/secret", FileSpec{Content: "key", Secret: true}))
	assertFile(t, filepath.Join(root, "secret"), "key", 0o600)
	converge(t, l, config.Resource{Kind: "env", Name: "/secret.env", Spec: &EnvSpec{Vars: map[string]string{"K": "v"}, Secret: true}})
	assertFile(t, filepath.Join(root, "secret.env"), "K=v\n", 0o600)
}

func TestFileAbsent(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "old.conf")
	writeTestFile(t, root, "/old.conf", "legacy\n", 0o600)
	r := fileRes("/old.conf", FileSpec{State: config.Absent})
	expectChange(t, l, r, Delete, "+++ /dev/null", "-legacy")
	changes := converge(t, l, r)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	restore(t, l, []config.Resource{r}, changes)
	assertFile(t, p, "legacy\n", 0o600)
}

func TestFileRestore(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	writeTestFile(t, root, "/existing", "before\n", 0o604)
	rs := []config.Resource{
		fileRes("/existing", FileSpec{Content: "after\n", Mode: "0600"}),
		fileRes("/new", FileSpec{Content: "created\n"}),
	}
	changes := converge(t, l, rs...)
	assertFile(t, filepath.Join(root, "existing"), "after\n", 0o600)
	restore(t, l, rs, changes)
	assertFile(t, filepath.Join(root, "existing"), "before\n", 0o604)
	if _, err := os.Lstat(filepath.Join(root, "new")); !os.IsNotExist(err) {
		t.Fatalf("a file that did not exist before is still there after restore: %v", err)
	}
}

func TestFileOwner(t *testing.T) {
	nobody := nobodyUser(t)
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "owned")
	writeTestFile(t, root, "/owned", "x", 0o644)
	r := fileRes("/owned", FileSpec{Content: "x", Owner: "nobody", Group: nobody.Gid})
	expectChange(t, l, r, Update, "owner: root -> nobody")
	changes := converge(t, l, r)
	assertOwner(t, p, nobody.Uid, nobody.Gid)

	// Chowned back behind its back.
	if err := os.Chown(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Update, "owner: root -> nobody")
	converge(t, l, r)
	assertOwner(t, p, nobody.Uid, nobody.Gid)

	// A rewrite without a declared owner keeps the current owner, even
	// through a transport whose WriteFile hands the file to its own user
	// (as a shell-based remote write does).
	r2 := fileRes("/owned", FileSpec{Content: "y"})
	converge(t, ownerLosing{l}, r2)
	assertOwner(t, p, nobody.Uid, nobody.Gid)
	env := envRes("/owned.env", EnvSpec{Vars: map[string]string{"A": "1"}})
	writeTestFile(t, root, "/owned.env", "B=2\n", 0o644)
	if err := os.Chown(filepath.Join(root, "owned.env"), mustAtoi(t, nobody.Uid), mustAtoi(t, nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	converge(t, ownerLosing{l}, env)
	assertOwner(t, filepath.Join(root, "owned.env"), nobody.Uid, nobody.Gid)

	restore(t, l, []config.Resource{r}, changes)
	assertOwner(t, p, "0", "0")
}

func TestFileApplyFailureLeavesNoTemp(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	// A directory where the file should be: the rename fails, and neither
	// the directory nor the folder gets a stray temporary file.
	if err := os.MkdirAll(filepath.Join(root, "conf", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := fileRes("/conf", FileSpec{Content: "x"})
	c := expectChange(t, l, r, Update, "type: directory -> file")
	err := Drivers()["file"].Apply(context.Background(), l, r, c.Before)
	if err == nil || !strings.Contains(err.Error(), "does not replace it") {
		t.Fatalf("got %v, want a refusal to replace a directory", err)
	}
	// With a stale observation (the directory appeared after the plan) the
	// refusal cannot happen and the rename itself fails.
	if err := Drivers()["file"].Apply(context.Background(), l, r, State{}); err == nil {
		t.Fatal("writing a file over a directory succeeded")
	}
	assertNoTemp(t, root)
	if fi, err := os.Stat(filepath.Join(root, "conf", "inner")); err != nil || !fi.IsDir() {
		t.Fatalf("the directory was damaged: %v", err)
	}
}

func assertFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Fatalf("%s: content %q, want %q", p, b, content)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Fatalf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
}

func assertOwner(t *testing.T, p, uid, gid string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got := strings.Join([]string{itoa(st.Uid), itoa(st.Gid)}, ":"); got != uid+":"+gid {
		t.Fatalf("%s: owner %s, want %s:%s", p, got, uid, gid)
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func TestFileRefusesToReplaceSymlink(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	writeTestFile(t, root, "/real", "real", 0o644)
	if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	r := fileRes("/link", FileSpec{Content: "new"})
	c := expectChange(t, l, r, Update, "type: symlink -> file")
	if err := Drivers()["file"].Apply(context.Background(), l, r, c.Before); err == nil {
		t.Fatal("a symlink was replaced by a file")
	}
	assertLink(t, filepath.Join(root, "link"), "real")
	assertFile(t, filepath.Join(root, "real"), "real", 0o644)
}

// ownerLosing is the local transport with writes that, like a shell-based
// remote write, leave a new file owned by root unless the write names its
// owner or group: the driver must name the owner to keep.
type ownerLosing struct{ *Local }

func (o ownerLosing) WriteFiles(ctx context.Context, files []FileWrite) (int, error) {
	n, err := o.Local.WriteFiles(ctx, files)
	for _, f := range files[:n] {
		if f.Owner == "" && f.Group == "" {
			if err := os.Lchown(filepath.Join(o.Root(), f.Path), 0, 0); err != nil {
				return n, err
			}
		}
	}
	return n, err
}

func (o ownerLosing) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	_, err := o.WriteFiles(ctx, []FileWrite{{Path: path, Data: data, Mode: mode}})
	return err
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFileLargeSendsHashOnly converges a file larger than the hash
// threshold: while it matches, a pass receives a few hundred bytes, not
// its content; an edit behind its back is still shown as a diff, and
// restore puts the edited content back.
func TestFileLargeSendsHashOnly(t *testing.T) {
	root := t.TempDir()
	ct := &countingTransport{Local: NewLocal(root)}
	p := filepath.Join(root, "big")
	content := strings.Repeat("a line of a large generated file\n", 2000)
	r := fileRes("/big", FileSpec{Content: content})
	converge(t, ct, r)
	assertFile(t, p, content, 0o644)

	ct.received = 0
	assertNoop(t, ct, r)
	if ct.received > 1024 {
		t.Fatalf("a converged pass received %d bytes for a %d-byte file", ct.received, len(content))
	}

	edited := strings.Replace(content, "a line", "AN EDITED line", 1)
	writeTestFile(t, root, "/big", edited, 0o644)
	c := expectChange(t, ct, r, Update, "-AN EDITED line", "+a line")
	if string(c.Before.Content) != edited {
		t.Fatal("the snapshot of an edited large file lacks its content")
	}
	converge(t, ct, r)
	restore(t, ct, []config.Resource{r}, []Change{c})
	assertFile(t, p, edited, 0o644)
	converge(t, ct, r)
	assertFile(t, p, content, 0o644)
}

// TestFileApplyTornWrite fails the file driver's write between the sync of
// the new content and its rename: the apply fails, and the file keeps its
// old content and mode, whole, with no temporary file beside it.
func TestFileApplyTornWrite(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	old := strings.Repeat("old\n", 5000)
	writeTestFile(t, root, "/conf", old, 0o600)
	l.beforeRename = func(string) error { return os.ErrDeadlineExceeded }
	r := fileRes("/conf", FileSpec{Content: strings.Repeat("new\n", 9000), Mode: "0644"})
	c := expectChange(t, l, r, Update)
	if err := Drivers()["file"].Apply(context.Background(), l, r, c.Before); err == nil || !strings.Contains(err.Error(), "file:/conf") {
		t.Fatalf("got %v, want the failure of file:/conf", err)
	}
	assertFile(t, filepath.Join(root, "conf"), old, 0o600)
	assertNoTemp(t, root)
}

func TestLongNames(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	name := "/" + strings.Repeat("n", 250)
	converge(t, l, fileRes(name, FileSpec{Content: "x"}))
	converge(t, l, linkRes("/"+strings.Repeat("l", 250), SymlinkSpec{Target: "x"}))
	assertNoTemp(t, root)
}

// nobodyUser returns the user nobody, skipping the test when it cannot
// change owners (not root) or the machine has no such user.
func nobodyUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		need.Missing(t, "changing owners needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		need.Missing(t, "no user nobody on this machine")
	}
	return nobody
}
