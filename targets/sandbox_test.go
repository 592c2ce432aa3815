package targets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/driftless/driftless/config"
)

// treeDigest lists every entry under dir with its type, mode and, for
// files and links, a hash of the content or the link's target.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			v += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			v += " " + hex.EncodeToString(sum[:])
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSandboxRootCannotBeEscaped applies, with the local transport rooted
// in a sandbox folder, a revision that declares a symlink pointing at a
// folder outside the root and then writes through it with every kind that
// takes a path. Everything must land inside the root, and nothing outside
// it may change.
func TestSandboxRootCannotBeEscaped(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, outside)
	res := func(kind, name string, spec any) config.Resource {
		return config.Resource{Kind: kind, Name: name, Spec: spec}
	}
	rs := []config.Resource{
		res("directory", "/srv", &DirectorySpec{}),
		// The link's target, as a folder under the root.
		res("directory", outside, &DirectorySpec{}),
		res("symlink", "/srv/esc", &SymlinkSpec{Target: outside}),
		res("symlink", "/srv/up", &SymlinkSpec{Target: "../../../../../../../.." + outside}),
		res("file", "/srv/esc/victim", &FileSpec{Content: "pwned\n", Mode: "0644"}),
		res("file", "/srv/up/victim", &FileSpec{Content: "pwned\n", Mode: "0644"}),
		res("file", "/srv/esc/new", &FileSpec{Content: "pwned\n", Mode: "0600"}),
		res("directory", "/srv/esc/dir", &DirectorySpec{Mode: "0700"}),
		res("env", "/srv/esc/app.env", &EnvSpec{Vars: map[string]string{"A": "1"}}),
		res("symlink", "/srv/esc/link", &SymlinkSpec{Target: "/etc/passwd"}),
		res("command", "touch", &CommandSpec{Run: "touch \"$DRIFTLESS_ROOT\"/srv/ok", Creates: "/srv/esc/created"}),
	}
	tr := NewLocal(root)
	drivers := Drivers()
	ctx := context.Background()
	for _, r := range rs {
		changes, err := PlanHost(ctx, tr, drivers, []config.Resource{r})
		if err != nil {
			t.Logf("plan %s: %v", r.ID(), err)
			continue
		}
		if c := changes[0]; c.Action != NoChange {
			if err := drivers[r.Kind].Apply(ctx, tr, r, c.Before); err != nil {
				t.Logf("apply %s: %v", r.ID(), err)
			}
		}
	}
	if after := treeDigest(t, outside); !reflect.DeepEqual(after, before) {
		t.Errorf("the folder outside the sandbox root changed:\nbefore %v\nafter  %v", before, after)
	}
	// What was written through the link landed under the root, where the
	// link's target is when the root is "/".
	inside := filepath.Join(root, outside, "victim")
	if got, err := os.ReadFile(inside); err != nil || string(got) != "pwned\n" {
		t.Errorf("%s: %q, %v; want the file written through the link inside the root", inside, got, err)
	}
}
