package hosts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/driftless/driftless/test/need"
)

// cgroupRoots are the hierarchies a kind-2 launcher is placed in. On a
// hybrid layout both the named systemd hierarchy and the unified one must
// hold it, or every container shares one payload cgroup.
func cgroupRoots() []string {
	return []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}
}

// Kind2 starts a full host: systemd-nspawn booting the base with systemd
// as PID 1 (services, journalctl, timers), in its own network namespace
// and overlay root. It returns once sshd answers and systemd reports the
// system running (or degraded). The test fails if it does not come up, and
// is skipped when systemd-nspawn is missing.
func (l *Lab) Kind2(name string) *Host {
	l.t.Helper()
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		need.Missing(l.t, "kind-2 test hosts need systemd-nspawn (systemd-container), which is not installed")
	}
	h, err := l.StartKind2(name)
	if err != nil {
		l.t.Fatalf("start kind-2 host %s: %v", name, err)
	}
	return h
}

// StartKind2 is Kind2 returning the error instead of failing the test.
func (l *Lab) StartKind2(name string) (*Host, error) {
	h, err := l.prepare(name, 2, l.lower, false)
	if h != nil {
		l.track(h)
	}
	if err != nil {
		return nil, err
	}
	if err := h.boot(); err != nil {
		return nil, err
	}
	return h, l.addHost(h)
}

// machine is the nspawn machine name, unique across labs.
func (h *Host) machine() string { return fmt.Sprintf("dl%d-%s", h.lab.N, h.Name) }

// cgroupName is the host's own cgroup below each root.
func (h *Host) cgroupName() string { return filepath.Join("driftless-testbed", h.machine()) }

// boot launches systemd-nspawn on the host's overlay and waits for sshd
// and for systemd to finish booting.
func (h *Host) boot() error {
	var enter []string
	for _, root := range cgroupRoots() {
		dir := filepath.Join(root, h.cgroupName())
		if _, err := os.Stat(root); err != nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		enter = append(enter, fmt.Sprintf("echo $$ > %s", shellQuote(filepath.Join(dir, "cgroup.procs"))))
	}
	args := []string{"systemd-nspawn", "-q", "-D", h.Root, "--boot",
		"--machine=" + h.machine(), "--hostname=" + h.Name,
		"--register=no", "--keep-unit", "--link-journal=no",
		"--network-namespace-path=/run/netns/" + h.Netns,
		"--capability=CAP_NET_ADMIN,CAP_NET_RAW",
		"--console=passive", "--resolv-conf=off", "--timezone=off"}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	// nspawn locks the image by the inode of its root; a SIGKILLed nspawn
	// leaves the lock file behind, so teardown removes it.
	var st syscall.Stat_t
	if err := syscall.Stat(h.Root, &st); err == nil {
		h.rootLock = fmt.Sprintf("/run/systemd/nspawn/locks/inode-%d:%d", st.Dev, st.Ino)
	}
	script := strings.Join(append(enter, "exec "+strings.Join(quoted, " ")), "\n")
	if err := h.launch(exec.Command("sh", "-c", script)); err != nil {
		return err
	}
	if err := h.waitSSH(startTimeout); err != nil {
		return err
	}
	return h.waitRunning(startTimeout)
}

// waitRunning waits until systemd inside reports running or degraded.
func (h *Host) waitRunning(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, _ := h.Exec("systemctl is-system-running")
		last = strings.TrimSpace(out)
		if last == "running" || last == "degraded" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("systemd on %s is %q after %s (see %s)", h.Name, last, timeout, h.LogFile())
}

// Reboot restarts a kind-2 host the way a real reboot does: systemd shuts
// down, then the same overlay boots again. The network namespace outlives
// the container, so addresses other than the lab's, routes and nft rules
// are flushed in between, as a real reboot would lose them.
func (h *Host) Reboot() error {
	if h.Kind != 2 {
		return fmt.Errorf("reboot %s: only kind-2 hosts boot", h.Name)
	}
	h.Exec("systemctl reboot") //nolint:errcheck // the session dies with the host
	select {
	case <-h.exited:
	case <-time.After(startTimeout):
		h.kill()
	}
	killNetnsPids(h.Netns)
	removeCgroups(h)
	steps := [][]string{
		{"ip", "-n", h.Netns, "route", "flush", "table", "main"},
		{"ip", "-n", h.Netns, "addr", "flush", "dev", "eth0"},
		{"ip", "-n", h.Netns, "addr", "add", h.Address + "/24", "dev", "eth0"},
		{"ip", "netns", "exec", h.Netns, "nft", "flush", "ruleset"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("reset network of %s for reboot: %w", h.Name, err)
		}
	}
	h.exited = make(chan struct{})
	return h.boot()
}

// removeCgroups removes the cgroups a kind-2 host's launcher ran in and
// the nspawn runtime leftovers of its machine.
func removeCgroups(h *Host) {
	for _, root := range cgroupRoots() {
		removeCgroupTree(filepath.Join(root, h.cgroupName()))
	}
	os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", h.machine()))
	if h.rootLock != "" {
		os.Remove(h.rootLock)
	}
}

// removeCgroupTree removes a cgroup and those systemd created below it,
// deepest first. A cgroup is only removable once its killed processes are
// gone, which takes a moment after SIGKILL, hence the retries.
func removeCgroupTree(top string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // best effort
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if len(dirs) == 0 {
			return
		}
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			if data, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil {
						syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // it may be gone
					}
				}
			}
			os.Remove(d)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
