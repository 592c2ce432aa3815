package targets

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/driftless/driftless/config"
)

func linkRes(name string, spec SymlinkSpec) config.Resource {
	return config.Resource{Kind: "symlink", Name: name, Spec: &spec}
}

func TestSymlinkConverges(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "current")
	r := linkRes("/current", SymlinkSpec{Target: "releases/v2"})

	expectChange(t, l, r, Create, "target: (absent) -> releases/v2")
	changes := converge(t, l, r)
	assertLink(t, p, "releases/v2")
	assertNoTemp(t, root)

	// Repointed behind its back.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/v1", p); err != nil {
		t.Fatal(err)
	}
	before := expectChange(t, l, r, Update, "target: releases/v1 -> releases/v2")
	converge(t, l, r)
	assertLink(t, p, "releases/v2")

	// Restore of the repointed state puts the old target back.
	restore(t, l, []config.Resource{r}, []Change{before})
	assertLink(t, p, "releases/v1")
	converge(t, l, r)

	// Removed behind its back.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Create)
	converge(t, l, r)
	assertLink(t, p, "releases/v2")

	// Restore of "did not exist" removes the link.
	restore(t, l, []config.Resource{r}, changes)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("link still there after restore: %v", err)
	}
	assertNoTemp(t, root)
}

func TestSymlinkAbsent(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "old")
	if err := os.Symlink("/nowhere", p); err != nil {
		t.Fatal(err)
	}
	r := linkRes("/old", SymlinkSpec{State: config.Absent})
	expectChange(t, l, r, Delete, "target: /nowhere -> (absent)")
	changes := converge(t, l, r)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("link still there: %v", err)
	}
	restore(t, l, []config.Resource{r}, changes)
	assertLink(t, p, "/nowhere")
}

func TestSymlinkRefusesToReplaceFile(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	writeTestFile(t, root, "/data", "precious", 0o600)
	r := linkRes("/data", SymlinkSpec{Target: "/elsewhere"})
	c := expectChange(t, l, r, Update, "type: not a symlink")
	if err := Drivers()["symlink"].Apply(context.Background(), l, r, c.Before); err == nil {
		t.Fatal("a regular file was replaced by a symlink")
	}
	assertFile(t, filepath.Join(root, "data"), "precious", 0o600)
	// Declared absent, a regular file there is not the symlink's business.
	expectChange(t, l, linkRes("/data", SymlinkSpec{State: config.Absent}), NoChange)
}

func assertLink(t *testing.T, p, target string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != target {
		t.Fatalf("%s points to %q, want %q", p, got, target)
	}
}
