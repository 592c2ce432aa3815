package targets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// TestPackageOnHost installs dl-hello from the lab's flat apt repository
// on a kind-1 host: pinned to 1.0, upgraded to 2.0, healed after a
// downgrade behind its back, restored to 1.0 and then to never installed,
// removed with state absent, and an unknown package fails clearly, all
// through the agent; a name qualified with an architecture is observed too.
func TestPackageOnHost(t *testing.T) {
	throughAgent(t, func(t *testing.T, reach reach) {
		lab := hosts.NewLab(t, hosts.Options{})
		lab.AptRepo(hosts.HelloDebs()...)
		h := lab.Kind1("pkg")
		publish := func(d hosts.Deb) { lab.AptRepo(d) }
		checkPackageDriver(t, reach(t, lab, h), h, targets.ManagerApt, "",
			"DEBIAN_FRONTEND=noninteractive apt-get -y -q --allow-downgrades install dl-hello=1.0 >/dev/null", publish)
	})
}

// TestPackageOnRPMHost runs the same course with dnf on an rpm-based host
// (no dpkg, no apt) and the lab's rpm repository, where rpm versions carry
// a release ("1.0-1") that a pin may leave out, through the agent
// (packages observed by its one rpm query, applied with one dnf run).
func TestPackageOnRPMHost(t *testing.T) {
	throughAgent(t, func(t *testing.T, reach reach) {
		lab := hosts.NewLab(t, hosts.Options{})
		lab.RPMRepo(hosts.HelloRPMs()...)
		h := lab.Kind1RPM("rpm")
		if out, err := h.Exec("command -v dpkg-query || command -v apt-get || echo none"); err != nil || strings.TrimSpace(out) != "none" {
			t.Fatalf("the rpm host still has dpkg or apt: %q %v", out, err)
		}
		publish := func(d hosts.Deb) { lab.RPMRepo(hosts.RPM{Name: d.Name, Version: d.Version, Files: d.Files}) }
		checkPackageDriver(t, reach(t, lab, h), h, targets.ManagerDnf, "-1", "dnf -y -q downgrade dl-hello-1.0 >/dev/null 2>&1", publish)
	})
}

// checkPackageDriver is the course both package managers run. release is
// what the manager appends to a version ("" for these debs, "-1" for these
// rpms); downgrade puts 1.0 back behind the driver's back; publish adds a
// package to the host's repository after the manager has cached its index.
func checkPackageDriver(t *testing.T, tr targets.Transport, h *hosts.Host, manager, release, downgrade string, publish func(hosts.Deb)) {
	t.Helper()
	d := &targets.PackageDriver{}
	pin := func(v string) config.Resource {
		return config.Resource{Kind: "package", Name: "dl-hello", Spec: &targets.PackageSpec{Version: v}}
	}
	installed := func() string {
		b, err := os.ReadFile(filepath.Join(h.Root, "usr/share/dl-hello/VERSION"))
		if err != nil {
			return "(none)"
		}
		return strings.TrimSpace(string(b))
	}

	before := srvHostObserve(t, tr, d, pin("1.0"))
	if before.Present || before.Fields["manager"] != manager {
		t.Fatalf("fresh host: %+v", before)
	}
	c := srvHostConverge(t, tr, d, pin("1.0"), targets.Create)
	if c.Diff != "version: (none) -> 1.0" || installed() != "1.0" {
		t.Fatalf("install 1.0: diff %q, installed %s", c.Diff, installed())
	}
	srvHostConverge(t, tr, d, pin("1.0"), targets.NoChange)
	if manager == targets.ManagerApt {
		// A name qualified with an architecture: dpkg knows the package
		// by the one it was built for (the lab's debs are "all").
		for name, present := range map[string]bool{"dl-hello:all": true, "dl-hello:amd64": false} {
			r := config.Resource{Kind: "package", Name: name, Spec: &targets.PackageSpec{}}
			if st := srvHostObserve(t, tr, d, r); st.Present != present || (present && st.Fields["version"] != "1.0") {
				t.Fatalf("%s: %+v, want present %v at 1.0", name, st, present)
			}
		}
	}

	snap1 := srvHostObserve(t, tr, d, pin("2.0"))
	c = srvHostConverge(t, tr, d, pin("2.0"), targets.Update)
	if c.Diff != "version: 1.0"+release+" -> 2.0" || installed() != "2.0" {
		t.Fatalf("upgrade: diff %q, installed %s", c.Diff, installed())
	}

	// Behind its back: a downgrade. The next pass upgrades again.
	h.MustExec(t, downgrade)
	srvHostConverge(t, tr, d, pin("2.0"), targets.Update)
	if installed() != "2.0" {
		t.Fatalf("drift not healed: %s", installed())
	}

	srvRestore(t, tr, d, pin("2.0"), snap1, sameState)
	if installed() != "1.0" {
		t.Fatalf("restore to 1.0: %s", installed())
	}
	srvRestore(t, tr, d, pin("2.0"), before, sameState)
	if installed() != "(none)" {
		t.Fatalf("restore to never installed: %s", installed())
	}

	// Unpinned install, then state absent removes it.
	srvHostConverge(t, tr, d, pin(""), targets.Create)
	if installed() != "2.0" {
		t.Fatalf("unpinned install got %s, want the newest", installed())
	}
	// A pin with the full version (for rpm: with its release) downgrades.
	srvHostConverge(t, tr, d, pin("1.0"+release), targets.Update)
	if installed() != "1.0" {
		t.Fatalf("pin 1.0%s got %s", release, installed())
	}
	// A version published after the manager cached the repository's
	// index: the driver refreshes it instead of failing.
	publish(hosts.Deb{Name: "dl-hello", Version: "3.0", Files: map[string]string{"/usr/share/dl-hello/VERSION": "3.0\n"}})
	srvHostConverge(t, tr, d, pin("3.0"), targets.Update)
	if installed() != "3.0" {
		t.Fatalf("pin to a newly published 3.0 got %s", installed())
	}
	gone := config.Resource{Kind: "package", Name: "dl-hello", Spec: &targets.PackageSpec{State: config.Absent}}
	srvHostConverge(t, tr, d, gone, targets.Delete)
	srvHostConverge(t, tr, d, gone, targets.NoChange)

	missing := config.Resource{Kind: "package", Name: "dl-nonexistent", Spec: &targets.PackageSpec{}}
	st := srvHostObserve(t, tr, d, missing)
	if err := d.Apply(t.Context(), tr, missing, st); err == nil || !strings.Contains(err.Error(), "dl-nonexistent") {
		t.Fatalf("installing an unknown package: %v", err)
	}
	bad := config.Resource{Kind: "package", Name: "x; reboot", Spec: &targets.PackageSpec{}}
	if err := d.Apply(t.Context(), tr, bad, st); err == nil {
		t.Fatal("a package name with shell syntax was accepted")
	}
}
