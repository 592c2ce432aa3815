package hosts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestKind1(t *testing.T) {
	lab := NewLab(t, Options{})
	a := lab.Kind1("alpha")
	b := lab.Kind1("beta")
	if a.Address == b.Address || a.Netns == b.Netns {
		t.Fatalf("hosts share an address or namespace: %s/%s %s/%s", a.Address, a.Netns, b.Address, b.Netns)
	}
	out := a.MustExec(t, "hostname; cat /etc/hostname; ip -4 -o addr show dev eth0")
	if !strings.Contains(out, "alpha\nalpha\n") || !strings.Contains(out, a.Address+"/24") {
		t.Fatalf("alpha has the wrong identity:\n%s", out)
	}
	// A file written inside the host is visible through Root, and not in the other host.
	a.MustExec(t, "echo inside > /etc/marker")
	if data, err := os.ReadFile(filepath.Join(a.Root, "etc/marker")); err != nil || string(data) != "inside\n" {
		t.Fatalf("marker through Root: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(b.Root, "etc/marker")); !os.IsNotExist(err) {
		t.Fatalf("beta sees alpha's file: %v", err)
	}
	kh, err := os.ReadFile(lab.KnownHostsFile)
	if err != nil || !strings.Contains(string(kh), a.KnownHostsLine()) || !strings.Contains(string(kh), b.KnownHostsLine()) {
		t.Fatalf("known_hosts lacks a host: %q %v", kh, err)
	}
	// alpha reaches beta over the bridge, and has no default route out.
	if out := a.MustExec(t, "ip route show default"); strings.TrimSpace(out) != "" {
		t.Fatalf("alpha has a default route: %q", out)
	}
}
