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

// TestNativeApplyAndRestore applies resources natively in a sandbox
// root, then restores every first snapshot, newest first: folders, links,
// files, env files, kernel parameters, unit files and commands, with the
// cases each kind refuses. The failed applies and restores are the
// expected ones, and so are the trees after the applies and after the
// restores (type, mode with its setuid, setgid and sticky bits, owner,
// content, link target): the restores put back the tree laid out first,
// but for the folders made as parents, which a restore keeps.
func TestNativeApplyAndRestore(t *testing.T) {
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
	root := t.TempDir()
	setup(root)
	initial := tree(t, root)
	tr := NewLocal(root)
	ctx := context.Background()
	ds := Drivers()
	var applyErrs, restoreErrs []bool
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
		t.Logf("apply %s: %v", r.ID(), err)
		applyErrs = append(applyErrs, err != nil)
	}
	applied := tree(t, root)
	for i := len(rs) - 1; i >= 0; i-- {
		err := ds[rs[i].Kind].Restore(ctx, tr, rs[i], before[i])
		t.Logf("restore %s: %v", rs[i].ID(), err)
		restoreErrs = append(restoreErrs, err != nil)
	}
	restored := tree(t, root)
	if want := []bool{false, false, false, false, true, true, false, false, false, true, false, false, true, true, false, false, false, true, false, false, true}; !slices.Equal(applyErrs, want) {
		t.Errorf("failed applies %v, want %v", applyErrs, want)
	}
	if want := []bool{false, false, false, false, false, false, false, false, true, false, false, false, false, false, false, false, false, false, false, false, true}; !slices.Equal(restoreErrs, want) {
		t.Errorf("failed restores (newest first) %v, want %v", restoreErrs, want)
	}
	wantApplied := []string{
		". 40755 0:0 d---------",
		"etc 40755 0:0 d---------",
		"etc/sysctl.d 40755 0:0 d---------",
		`etc/sysctl.d/99-driftless-net.ipv4.ip_forward.conf 100644 0:0 ---------- "# Written by driftless: the declared value survives a reboot.\nnet.ipv4.ip_forward = 1\n"`,
		"etc/systemd 40755 0:0 d---------",
		"etc/systemd/system 40755 0:0 d---------",
		`etc/systemd/system/dl-app.service 100644 0:0 ---------- "[Service]\nExecStart=/bin/true\n"`,
		"proc 40755 0:0 d---------",
		"proc/sys 40755 0:0 d---------",
		"proc/sys/net 40755 0:0 d---------",
		"proc/sys/net/ipv4 40755 0:0 d---------",
		`proc/sys/net/ipv4/ip_forward 100644 0:0 ---------- "1\n"`,
		"srv 40755 0:0 d---------",
		`srv/app.env 100644 0:0 ---------- "# keep\nA=1\nB=2\nC=\"three words\"\n"`,
		"srv/d 40750 65534:0 d---------",
		"srv/d/a 40755 0:0 d---------",
		"srv/d/a/b 42775 0:0 d---------",
		`srv/d/f 100640 0:65534 ---------- "port = 1\n"`,
		fmt.Sprintf(`srv/d/made 100644 0:0 ---------- "%d\n"`, len(root)+1),
		`srv/d/new.env 100600 0:0 ---------- "X=y\n"`,
		"srv/d0 41777 0:65534 d---------",
		"srv/dirfile 40755 0:0 d---------",
		"srv/full 40755 0:0 d---------",
		`srv/full/x 100644 0:0 ---------- "x"`,
		`srv/inway 100644 0:0 ---------- "in the way"`,
		"srv/l 120777 0:0 L--------- -> /srv/d",
		"srv/newlink 120777 0:0 L--------- -> relative/x",
		`srv/notlink 100644 0:0 ---------- "file"`,
	}
	if !slices.Equal(applied, wantApplied) {
		t.Errorf("after the applies the tree is:\n%s\nwant:\n%s", strings.Join(applied, "\n"), strings.Join(wantApplied, "\n"))
	}
	wantRestored := append(slices.Clone(initial), "etc 40755 0:0 d---------", "etc/sysctl.d 40755 0:0 d---------",
		"etc/systemd 40755 0:0 d---------", "etc/systemd/system 40755 0:0 d---------",
		"srv/d 40750 65534:0 d---------", "srv/d/a 40755 0:0 d---------")
	slices.Sort(wantRestored)
	if got := slices.Sorted(slices.Values(restored)); !slices.Equal(got, wantRestored) {
		t.Errorf("after the restores the tree is:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRestored, "\n"))
	}
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
