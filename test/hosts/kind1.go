package hosts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds how long a host may take to answer on port 22.
const startTimeout = 60 * time.Second

// Kind1 starts a light host: its own network namespace and overlay root,
// with sshd as PID 1 of its own PID namespace in a chroot (no systemd).
// It is good for files, packages, nftables, addresses and routes. The test
// fails if the host does not come up.
func (l *Lab) Kind1(name string) *Host {
	l.t.Helper()
	h, err := l.StartKind1(name)
	if err != nil {
		l.t.Fatalf("start kind-1 host %s: %v", name, err)
	}
	return h
}

// StartKind1 is Kind1 returning the error instead of failing the test.
func (l *Lab) StartKind1(name string) (*Host, error) {
	return l.startKind1(name, l.lower, false)
}

// Kind1RPM starts a kind-1 host that is rpm-based: the base with Debian's
// dnf and rpm added and dpkg and apt taken away (a cached overlay layer),
// its rpm database in /var/lib/rpm, and dnf pointed at the lab's rpm
// repository (see RPMRepo). It is how the tests reach the dnf side of the
// package driver without an rpm distribution's own root filesystem.
func (l *Lab) Kind1RPM(name string) *Host {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	layer, err := rpmLayer(ctx, l.logf, l.lower)
	if err != nil {
		l.t.Fatalf("start rpm host %s: %v", name, err)
	}
	h, err := l.startKind1(name, layer+":"+l.lower, true)
	if err != nil {
		l.t.Fatalf("start rpm host %s: %v", name, err)
	}
	return h
}

func (l *Lab) startKind1(name, lower string, rpm bool) (*Host, error) {
	h, err := l.prepare(name, 1, lower, rpm)
	if h != nil {
		l.track(h)
	}
	if err != nil {
		return nil, err
	}
	script := strings.Join([]string{
		"set -e",
		"R=" + shellQuote(h.Root),
		`mount -t proc proc "$R/proc"`,
		`mount -t sysfs sysfs "$R/sys"`,
		`mount --rbind /dev "$R/dev"`,
		`mount -t tmpfs -o mode=755 tmpfs "$R/run"`,
		`mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"`,
		`mkdir -p "$R/run/sshd"`,
		"hostname " + shellQuote(h.Name),
		`exec chroot "$R" /usr/sbin/sshd -D -e`,
	}, "\n")
	if err := h.launch(exec.Command("ip", "netns", "exec", h.Netns,
		"unshare", "--pid", "--mount", "--uts", "--ipc", "--fork", "--kill-child", "--propagation", "private",
		"sh", "-c", script)); err != nil {
		return nil, err
	}
	if err := h.waitSSH(startTimeout); err != nil {
		return nil, err
	}
	return h, l.addHost(h)
}

// track makes sure teardown stops a host even when its start failed half-way.
func (l *Lab) track(h *Host) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.hosts {
		if o == h {
			return
		}
	}
	l.hosts = append(l.hosts, h)
}

// launch starts the host's launcher with its output in the host's log file
// and reaps it in the background.
func (h *Host) launch(cmd *exec.Cmd) error {
	f, err := os.OpenFile(h.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", h.Name, err)
	}
	h.logFile = f
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a signal to the test's group does not reach it twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("launch %s: %w", h.Name, err)
	}
	h.cmd = cmd
	go func() {
		cmd.Wait() //nolint:errcheck // the exit of a killed host is expected
		close(h.exited)
	}()
	return nil
}

// Stop kills the host and removes its namespace, veth and overlay mount.
// It is called by the lab's cleanup; calling it earlier is allowed.
func (h *Host) Stop() {
	h.stopOnce.Do(func() {
		h.kill()
		quiet("ip", "link", "del", h.veth)
		quiet("ip", "netns", "del", h.Netns)
		quiet("ip", "neigh", "flush", "to", h.Address, "dev", h.lab.Bridge)
		unmountUnder(h.Root)
		if h.Kind == 2 {
			// nspawn's runtime folders outlive its processes by a moment.
			removeCgroups(h)
		}
		if h.logFile != nil {
			h.logFile.Close()
		}
	})
}

// kill ends the launcher and everything left in the host's namespace, and
// waits until the launcher is reaped. unshare --fork ignores SIGTERM, so
// SIGKILL is the way.
func (h *Host) kill() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill() //nolint:errcheck // it may have exited already
	}
	killNetnsPids(h.Netns)
	if h.cmd != nil {
		select {
		case <-h.exited:
		case <-time.After(30 * time.Second):
			h.lab.logf("host %s: launcher did not exit after SIGKILL", h.Name)
		}
	}
	if h.Kind == 2 {
		removeCgroups(h)
	}
}
