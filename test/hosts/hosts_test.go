package hosts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/driftless/driftless/test/need"
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

func TestKind2(t *testing.T) {
	lab := NewLab(t, Options{})
	a := lab.Kind2("svc-a")
	b := lab.Kind2("svc-b")
	for _, h := range []*Host{a, b} {
		out := h.MustExec(t, "hostname; systemctl is-active ssh; cat /proc/1/comm")
		if out != h.Name+"\nactive\nsystemd\n" {
			t.Fatalf("%s: %q", h.Name, out)
		}
	}
	// Services of two containers do not collide: each has its own cgroup.
	for _, h := range []*Host{a, b} {
		h.MustExec(t, "systemd-run --unit=dl-sleeper sleep 300")
	}
	if out := a.MustExec(t, "systemctl stop dl-sleeper; systemctl is-active dl-sleeper || true"); out != "inactive\n" {
		t.Fatalf("stopped unit on a: %q", out)
	}
	if out := b.MustExec(t, "systemctl is-active dl-sleeper"); out != "active\n" {
		t.Fatalf("stopping a's unit touched b: %q", out)
	}
	// nft works inside (CAP_NET_ADMIN granted).
	a.MustExec(t, "nft add table inet dltest && nft list tables")
	if err := a.Reboot(); err != nil {
		t.Fatal(err)
	}
	if out := a.MustExec(t, "nft list tables; systemctl is-active ssh"); out != "active\n" {
		t.Fatalf("after reboot: %q (nft rules must be gone, ssh active)", out)
	}
}

func TestAptRepo(t *testing.T) {
	lab := NewLab(t, Options{})
	before := lab.Kind1("apt-before")
	lab.AptRepo(HelloDebs()...)
	after := lab.Kind1("apt-after")
	for _, h := range []*Host{before, after} {
		h.MustExec(t, "apt-get update -q && apt-get install -y -q dl-hello=1.0")
		if data, err := os.ReadFile(filepath.Join(h.Root, "usr/share/dl-hello/VERSION")); err != nil || string(data) != "1.0\n" {
			t.Fatalf("%s: VERSION after installing 1.0: %q %v", h.Name, data, err)
		}
	}
	after.MustExec(t, "apt-get install -y -q dl-hello")
	if out := after.MustExec(t, "dpkg-query -W -f '${Version}' dl-hello"); out != "2.0" {
		t.Fatalf("upgrade installed %q, want 2.0", out)
	}
	// Packages added later are visible after the next apt-get update.
	lab.AptRepo(Deb{Name: "dl-extra", Version: "0.1", Files: map[string]string{"/etc/dl-extra.conf": "x=1\n"}})
	after.MustExec(t, "apt-get update -q && apt-get install -y -q dl-extra")
	if data, _ := os.ReadFile(filepath.Join(after.Root, "etc/dl-extra.conf")); string(data) != "x=1\n" {
		t.Fatalf("dl-extra not installed: %q", data)
	}
}

// TestCleanStale kills a process that runs a lab (no cleanup runs) and
// checks that CleanStale removes everything it left.
func TestCleanStale(t *testing.T) {
	if os.Getenv("DL_STALE_CHILD") == "1" {
		lab := NewLab(t, Options{})
		h := lab.Kind1("stale")
		pid, _ := h.leaderPid()
		fmt.Printf("STALE %d %s %s %d\n", lab.N, h.Netns, h.Root, pid)
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if os.Geteuid() != 0 {
		need.Missing(t, "test hosts need root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanStale$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DL_STALE_CHILD=1")
	out, _ := cmd.Output()
	var n, pid int
	var ns, root string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "STALE ") {
			fmt.Sscanf(line, "STALE %d %s %s %d", &n, &ns, &root, &pid)
		}
	}
	if ns == "" {
		need.Missing(t, "the child could not start a lab (skipped or failed): %s", out)
	}
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		t.Fatalf("the killed run left no namespace %s to clean: %v", ns, err)
	}
	if err := CleanStale(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + ns); !os.IsNotExist(err) {
		t.Fatalf("namespace %s survived: %v", ns, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/sys/class/net/dlbr%d", n)); !os.IsNotExist(err) {
		t.Fatalf("bridge dlbr%d survived: %v", n, err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Fatalf("overlay %s is still mounted", root)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("the killed run's folder survived: %v", err)
	}
	// The orphaned sshd was killed (it may linger a moment as a zombie).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed run's sshd (pid %d) still runs: %s", pid, stat)
		}
	}
}
