package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

func dirRes(name string, spec DirectorySpec) config.Resource {
	return config.Resource{Kind: "directory", Name: name, Spec: &spec}
}

func TestDirectoryConverges(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "srv/app/data")
	r := dirRes("/srv/app/data", DirectorySpec{Mode: "0750"})

	expectChange(t, l, r, Create, "directory: absent -> present", "mode: 0750")
	changes := converge(t, l, r)
	assertDir(t, p, 0o750)

	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Update, "mode: 0700 -> 0750")
	converge(t, l, r)
	assertDir(t, p, 0o750)

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Create)
	converge(t, l, r)
	assertDir(t, p, 0o750)

	// Restore of "did not exist" removes the directory again (it is empty).
	restore(t, l, []config.Resource{r}, changes)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("directory still there after restore: %v", err)
	}
}

func TestDirectoryRestoreMode(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "d")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	r := dirRes("/d", DirectorySpec{Mode: "0755"})
	changes := converge(t, l, r)
	assertDir(t, p, 0o755)
	restore(t, l, []config.Resource{r}, changes)
	assertDir(t, p, 0o700)
}

func TestDirectoryAbsent(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	ctx := context.Background()
	p := filepath.Join(root, "old")
	if err := os.MkdirAll(filepath.Join(p, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := dirRes("/old", DirectorySpec{State: config.Absent})
	c := expectChange(t, l, r, Delete)
	err := Drivers()["directory"].Apply(ctx, l, r, c.Before)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("got %v, want a refusal to remove a directory that is not empty", err)
	}
	if _, err := os.Stat(filepath.Join(p, "keep")); err != nil {
		t.Fatalf("the content was touched: %v", err)
	}
	if err := os.Remove(filepath.Join(p, "keep")); err != nil {
		t.Fatal(err)
	}
	changes := converge(t, l, r)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("empty directory still there: %v", err)
	}
	restore(t, l, []config.Resource{r}, changes)
	assertDir(t, p, 0o755)
}

func TestDirectoryOverFile(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	writeTestFile(t, root, "/f", "data", 0o644)
	r := dirRes("/f", DirectorySpec{})
	c := expectChange(t, l, r, Update, "type: file -> directory")
	if err := Drivers()["directory"].Apply(context.Background(), l, r, c.Before); err == nil {
		t.Fatal("a file was replaced by a directory")
	}
	assertFile(t, filepath.Join(root, "f"), "data", 0o644)
}

func TestDirectoryOwner(t *testing.T) {
	nobody := nobodyUser(t)
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "d")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	r := dirRes("/d", DirectorySpec{Owner: "nobody"})
	expectChange(t, l, r, Update, "owner: root -> nobody")
	changes := converge(t, l, r)
	assertOwner(t, p, nobody.Uid, "0")
	if err := os.Chown(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Update, "owner: root -> nobody")
	converge(t, l, r)
	restore(t, l, []config.Resource{r}, changes)
	assertOwner(t, p, "0", "0")
}

func assertDir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != mode {
		t.Fatalf("%s: %v, want a directory with mode %v", p, fi.Mode(), mode)
	}
}

// TestDirectoryNeedsNativeApply: the directory kind has no shell apply
// left, so a transport that does not apply natively is refused and
// nothing is made; the local transport applies natively.
func TestDirectoryNeedsNativeApply(t *testing.T) {
	root := t.TempDir()
	r := config.Resource{Kind: "directory", Name: "/d", Spec: &DirectorySpec{}}
	d := Drivers()["directory"]
	err := d.Apply(t.Context(), struct{ Transport }{NewLocal(root)}, r, State{})
	if err == nil || !strings.Contains(err.Error(), "does not apply natively") {
		t.Fatalf("apply through a transport without native applies: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "d")); !os.IsNotExist(err) {
		t.Fatalf("the folder was made: %v", err)
	}
	if err := d.Apply(t.Context(), NewLocal(root), r, State{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "d")); err != nil || !fi.IsDir() {
		t.Fatalf("the local transport did not make the folder: %v", err)
	}
}

// A folder replaced by a link after it was observed is refused at apply,
// and the link's target keeps its mode: the mode and owner are given
// through the folder's own descriptor, never through a link.
func TestDirectorySwappedForLinkIsRefused(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	target := filepath.Join(root, "etc")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o755); err != nil {
		t.Fatal(err)
	}
	r := dirRes("/srv/data", DirectorySpec{Mode: "0777"})
	if err := os.MkdirAll(filepath.Join(root, "srv/data"), 0o700); err != nil {
		t.Fatal(err)
	}
	states, err := Observe(context.Background(), l, Drivers(), []config.Resource{r})
	if err != nil {
		t.Fatal(err)
	}
	// Swapped after the observation.
	if err := os.Remove(filepath.Join(root, "srv/data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(root, "srv/data")); err != nil {
		t.Fatal(err)
	}
	err = (&DirectoryDriver{}).Apply(context.Background(), l, r, states[r.ID()])
	if err == nil || !strings.Contains(err.Error(), "no longer a directory") {
		t.Fatalf("apply over a swapped-in link said %v, want a refusal", err)
	}
	assertDir(t, target, 0o755)
}
