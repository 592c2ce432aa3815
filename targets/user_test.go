package targets_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

func sameState(a, b targets.State) bool { return reflect.DeepEqual(a, b) }

// TestUserAndGroupOnHost creates a group and a user on a kind-1 host,
// heals changes made behind the drivers' backs, then restores the host to
// exactly what it was: a changed user gets its old shell and groups back,
// created ones disappear with their home. It runs through the agent, on
// a Debian host and on the rpm host.
func TestUserAndGroupOnHost(t *testing.T) {
	throughAgent(t, func(t *testing.T, reach reach) {
		t.Run("debian", func(t *testing.T) {
			lab := hosts.NewLab(t, hosts.Options{})
			testUserAndGroup(t, lab, lab.Kind1("users"), reach)
		})
		t.Run("rpm", func(t *testing.T) {
			lab := hosts.NewLab(t, hosts.Options{})
			testUserAndGroup(t, lab, lab.Kind1RPM("users-rpm"), reach)
		})
	})
}

func testUserAndGroup(t *testing.T, lab *hosts.Lab, h *hosts.Host, reach reach) {
	tr := reach(t, lab, h)
	gd, ud := &targets.GroupDriver{}, &targets.UserDriver{}

	devs := config.Resource{Kind: "group", Name: "devs", Spec: &targets.GroupSpec{GID: 2345}}
	ops := config.Resource{Kind: "group", Name: "ops", Spec: &targets.GroupSpec{}}
	alice := config.Resource{Kind: "user", Name: "alice", Spec: &targets.UserSpec{UID: 2001, Shell: "/bin/bash", Groups: []string{"ops", "devs"}}}

	devsBefore := srvHostObserve(t, tr, gd, devs)
	opsBefore := srvHostObserve(t, tr, gd, ops)
	aliceBefore := srvHostObserve(t, tr, ud, alice)
	if devsBefore.Present || aliceBefore.Present {
		t.Fatalf("fresh host already has devs or alice: %+v %+v", devsBefore, aliceBefore)
	}
	srvHostConverge(t, tr, gd, devs, targets.Create)
	srvHostConverge(t, tr, gd, ops, targets.Create)
	c := srvHostConverge(t, tr, ud, alice, targets.Create)
	if !strings.Contains(c.Diff, "user: (none) -> alice") {
		t.Errorf("create diff = %q", c.Diff)
	}
	passwd, _ := os.ReadFile(filepath.Join(h.Root, "etc/passwd"))
	if !strings.Contains(string(passwd), "alice:x:2001:") || !strings.Contains(string(passwd), ":/bin/bash\n") {
		t.Fatalf("/etc/passwd lacks alice with uid 2001 and bash:\n%s", passwd)
	}
	if got := strings.TrimSpace(h.MustExec(t, "getent group devs")); got != "devs:x:2345:alice" {
		t.Fatalf("getent group devs = %q", got)
	}
	srvHostConverge(t, tr, gd, devs, targets.NoChange)
	srvHostConverge(t, tr, ud, alice, targets.NoChange)

	// Behind the drivers' backs: another shell, one group fewer, a new gid.
	h.MustExec(t, "usermod -s /bin/sh alice && gpasswd -d alice devs >/dev/null && groupmod -g 2400 devs")
	c = srvHostConverge(t, tr, ud, alice, targets.Update)
	if !strings.Contains(c.Diff, "shell: /bin/sh -> /bin/bash") || !strings.Contains(c.Diff, "groups: ops -> devs,ops") {
		t.Errorf("drift diff = %q", c.Diff)
	}
	c = srvHostConverge(t, tr, gd, devs, targets.Update)
	if c.Diff != "gid: 2400 -> 2345" {
		t.Errorf("gid drift diff = %q", c.Diff)
	}

	// A change to an existing user is restored exactly.
	snap := srvHostObserve(t, tr, ud, alice)
	changed := config.Resource{Kind: "user", Name: "alice", Spec: &targets.UserSpec{Shell: "/bin/sh", Groups: []string{}}}
	srvHostConverge(t, tr, ud, changed, targets.Update)
	srvRestore(t, tr, ud, changed, snap, sameState)

	// Removal, then restore re-creates the user with its old ids.
	gone := config.Resource{Kind: "user", Name: "alice", Spec: &targets.UserSpec{State: config.Absent}}
	srvHostConverge(t, tr, ud, gone, targets.Delete)
	srvHostConverge(t, tr, ud, gone, targets.NoChange)
	srvRestore(t, tr, ud, gone, snap, sameState)

	// Restoring the first snapshots removes what the drivers created.
	srvRestore(t, tr, ud, alice, aliceBefore, sameState)
	srvRestore(t, tr, gd, devs, devsBefore, sameState)
	srvRestore(t, tr, gd, ops, opsBefore, sameState)
	if _, err := os.Stat(filepath.Join(h.Root, "home/alice")); !os.IsNotExist(err) {
		t.Fatalf("restore left alice's home behind: %v", err)
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/shadow"} {
		b, _ := os.ReadFile(filepath.Join(h.Root, f))
		if strings.Contains(string(b), "alice") || strings.Contains(string(b), "devs") {
			t.Fatalf("restore left an account in /%s:\n%s", f, b)
		}
	}

	// Bad names never reach the host.
	bad := config.Resource{Kind: "user", Name: "x;rm -rf /", Spec: &targets.UserSpec{}}
	if err := ud.Apply(t.Context(), tr, bad, targets.State{}); err == nil {
		t.Fatal("a user name with shell syntax was accepted")
	}
}
