package targets

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/need"
)

// nativeLocal is the local transport applying natively with the host end
// in process: what agent.Local does (package agent imports this one).
type nativeLocal struct{ *Local }

func (n nativeLocal) ApplyNative(ctx context.Context, steps []Step) (int, error) {
	h := NewHost(n.root)
	defer h.Close()
	return h.Apply(ctx, steps)
}

// TestNativeApplyMatchesShell applies the same resources in two sandbox
// roots laid out alike, one with the shell scripts and one natively, then
// restores every first snapshot, newest first. After the applies and after
// the restores both trees are the same (type, mode with its setuid, setgid
// and sticky bits, owner, content, link target), and the same resources
// fail: folders, links, files, env files, kernel parameters, unit files
// and commands, with the cases each kind refuses.
func TestNativeApplyMatchesShell(t *testing.T) {
	need.Root(t, "files and folders are given to nobody")
	setup := func(root string) {
		for _, d := range []string{"srv/empty", "srv/full", "srv/dirfile", "srv/d0", "proc/sys/net/ipv4"} {
			must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		}
		must(t, os.Chmod(filepath.Join(root, "srv/d0"), 0o700))
		for p, c := range map[string]string{"srv/full/x": "x", "srv/inway": "in the way", "srv/gone": "old", "srv/notlink": "file",
			"srv/app.env": "# keep\nA=0\nB=2\n", "proc/sys/net/ipv4/ip_forward": "0\n"} {
			must(t, os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
		}
		must(t, os.Symlink("/srv/full", filepath.Join(root, "srv/oldlink")))
		must(t, os.Symlink("/srv/full", filepath.Join(root, "srv/l")))
	}
	no := false
	rs := []config.Resource{
		{Kind: "directory", Name: "/srv/d", Spec: &DirectorySpec{Mode: "0750", Owner: "nobody"}},
		{Kind: "directory", Name: "/srv/d/a/b", Spec: &DirectorySpec{Mode: "2775"}},
		{Kind: "directory", Name: "/srv/d0", Spec: &DirectorySpec{Mode: "1777", Group: "65534"}},
		{Kind: "directory", Name: "/srv/empty", Spec: &DirectorySpec{State: config.Absent}},
		{Kind: "directory", Name: "/srv/full", Spec: &DirectorySpec{State: config.Absent}},
		{Kind: "directory", Name: "/srv/inway", Spec: &DirectorySpec{}},
		{Kind: "symlink", Name: "/srv/l", Spec: &SymlinkSpec{Target: "/srv/d"}},
		{Kind: "symlink", Name: "/srv/newlink", Spec: &SymlinkSpec{Target: "relative/x"}},
		{Kind: "symlink", Name: "/srv/oldlink", Spec: &SymlinkSpec{State: config.Absent}},
		{Kind: "symlink", Name: "/srv/notlink", Spec: &SymlinkSpec{Target: "/x"}},
		{Kind: "file", Name: "/srv/d/f", Spec: &FileSpec{Content: "port = 1\n", Mode: "0640", Group: "nogroup"}},
		{Kind: "file", Name: "/srv/gone", Spec: &FileSpec{State: config.Absent}},
		{Kind: "file", Name: "/srv/dirfile", Spec: &FileSpec{State: config.Absent}},
		{Kind: "file", Name: "/srv/nofolder/f", Spec: &FileSpec{Content: "x"}},
		{Kind: "env", Name: "/srv/app.env", Spec: &EnvSpec{Vars: map[string]string{"A": "1", "C": "three words"}}},
		{Kind: "env", Name: "/srv/d/new.env", Spec: &EnvSpec{Vars: map[string]string{"X": "y"}, Mode: "0600"}},
		{Kind: "sysctl", Name: "net.ipv4.ip_forward", Spec: &SysctlSpec{Value: "1"}},
		{Kind: "sysctl", Name: "net.ipv4.nonesuch", Spec: &SysctlSpec{Value: "1"}},
		{Kind: "service", Name: "dl-app", Spec: &ServiceSpec{Unit: "[Service]\nExecStart=/bin/true\n", Enabled: &no}},
		{Kind: "command", Name: "init", Spec: &CommandSpec{Run: "echo \"$DRIFTLESS_ROOT\" | wc -c > made && pwd >/dev/null",
			Dir: "/srv/d", Creates: "/srv/d/made", Undo: "rm made"}},
		{Kind: "command", Name: "fails", Spec: &CommandSpec{Run: "echo nope >&2; exit 3"}},
	}
	type outcome struct {
		applied, restored []string // the trees
		applyErrs         []bool
		restoreErrs       []bool
	}
	run := func(native bool) outcome {
		root := t.TempDir()
		setup(root)
		var tr Transport = NewLocal(root)
		if native {
			tr = nativeLocal{NewLocal(root)}
		}
		ctx := context.Background()
		ds := Drivers()
		var out outcome
		before := make([]State, len(rs))
		for i, r := range rs {
			states, err := Observe(ctx, tr, ds, []config.Resource{r})
			if err != nil {
				t.Fatalf("observe %s: %v", r.ID(), err)
			}
			before[i] = states[r.ID()]
			c := ds[r.Kind].Diff(r, before[i])
			err = nil
			if c.Action != NoChange {
				err = ds[r.Kind].Apply(ctx, tr, r, before[i])
			}
			t.Logf("native %v: apply %s: %v", native, r.ID(), err)
			out.applyErrs = append(out.applyErrs, err != nil)
		}
		out.applied = tree(t, root)
		for i := len(rs) - 1; i >= 0; i-- {
			err := ds[rs[i].Kind].Restore(ctx, tr, rs[i], before[i])
			t.Logf("native %v: restore %s: %v", native, rs[i].ID(), err)
			out.restoreErrs = append(out.restoreErrs, err != nil)
		}
		out.restored = tree(t, root)
		return out
	}
	shell, native := run(false), run(true)
	if !slices.Equal(shell.applyErrs, native.applyErrs) || !slices.Equal(shell.restoreErrs, native.restoreErrs) {
		t.Errorf("failed applies: shell %v, native %v; failed restores: shell %v, native %v",
			shell.applyErrs, native.applyErrs, shell.restoreErrs, native.restoreErrs)
	}
	if want := []bool{false, false, false, false, true, true, false, false, false, true, false, false, true, true, false, false, false, true, false, false, true}; !slices.Equal(native.applyErrs, want) {
		t.Errorf("failed applies %v, want %v", native.applyErrs, want)
	}
	for _, c := range []struct {
		what       string
		shell, nat []string
	}{{"after the applies", shell.applied, native.applied}, {"after the restores", shell.restored, native.restored}} {
		if !slices.Equal(c.shell, c.nat) {
			t.Errorf("%s the trees differ:\nshell:\n%s\nnative:\n%s", c.what, strings.Join(c.shell, "\n"), strings.Join(c.nat, "\n"))
		}
	}
	t.Logf("after the applies:\n%s", strings.Join(native.applied, "\n"))
}

// tree lists everything under root: path, type, mode, owner, and a file's
// content or a link's target.
func tree(t *testing.T, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %o %d:%d %s", rel, st.Mode, st.Uid, st.Gid, fi.Mode().Type())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
