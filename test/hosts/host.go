package hosts

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host is one test machine: its own network namespace, address and
// overlay root, with sshd listening on port 22 of Address.
type Host struct {
	// Name is the host's hostname, unique within its lab.
	Name string
	// Kind is 1 (sshd as PID 1 in a chroot) or 2 (systemd-nspawn booting systemd).
	Kind int
	// Address is the host's IPv4 address on the lab bridge.
	Address string
	// Root is the host's overlay root as seen from the root namespace:
	// tests read and write the host's files through it.
	Root string
	// Netns is the name of the host's network namespace (ip netns).
	Netns string
	// HostKey is the host's ed25519 SSH host key.
	HostKey ssh.PublicKey

	lab      *Lab
	dir      string
	veth     string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
	logFile  *os.File
	rootLock string
	rpm      bool // rpm-based (Kind1RPM): dnf and rpm, no dpkg or apt
}

// KnownHostsLine is the host's known_hosts entry.
func (h *Host) KnownHostsLine() string {
	return knownhosts.Line([]string{h.Address}, h.HostKey)
}

// AuthorizedKey is the host key in authorized_keys format ("ssh-ed25519 AAAA...").
func (h *Host) AuthorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey)))
}

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// LogFile is the path of the host's console or sshd log, for failing tests.
func (h *Host) LogFile() string { return filepath.Join(h.dir, "console.log") }

// prepare creates the namespace, the veth and the overlay root of a new
// host and writes its identity and sshd configuration. lower is the
// overlay's lowerdir: the base, or a layer over it.
func (l *Lab) prepare(name string, kind int, lower string, rpm bool) (*Host, error) {
	addr, err := l.allocIP()
	if err != nil {
		return nil, err
	}
	idx := strings.TrimPrefix(addr, fmt.Sprintf("10.77.%d.", l.N))
	h := &Host{
		Name: name, Kind: kind, Address: addr, lab: l,
		Netns:  fmt.Sprintf("dl%dh%s", l.N, idx),
		veth:   fmt.Sprintf("dl%dv%s", l.N, idx),
		dir:    filepath.Join(l.dir, "host-"+name),
		exited: make(chan struct{}),
		rpm:    rpm,
	}
	h.Root = filepath.Join(h.dir, "root")
	for _, d := range []string{h.Root, filepath.Join(h.dir, "upper"), filepath.Join(h.dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(h.dir, "upper"), filepath.Join(h.dir, "work"))
	if err := syscall.Mount("overlay", h.Root, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mount overlay for %s: %w", name, err)
	}
	peer := fmt.Sprintf("dl%dp%s", l.N, idx)
	steps := [][]string{
		{"ip", "netns", "add", h.Netns},
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", h.Netns},
		{"ip", "link", "set", h.veth, "master", l.Bridge, "up"},
		{"ip", "-n", h.Netns, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", h.Netns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"ip", "-n", h.Netns, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Netns, "link", "set", "lo", "up"},
		{"ip", "neigh", "flush", "to", addr, "dev", l.Bridge},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return h, err
		}
	}
	return h, h.writeIdentity()
}

// writeIdentity gives the host its hostname, machine-id, a fresh host key,
// the lab's client key for root, and the sshd drop-in.
func (h *Host) writeIdentity() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	if h.HostKey, err = ssh.NewPublicKey(pub); err != nil {
		return fmt.Errorf("host public key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "root@"+h.Name)
	if err != nil {
		return fmt.Errorf("encode host key: %w", err)
	}
	id := make([]byte, 16)
	rand.Read(id) //nolint:errcheck // crypto/rand does not fail on Linux
	sshd := strings.Join(append(append([]string(nil), h.lab.opts.SSHDConfig...),
		"ListenAddress "+h.Address,
		"HostKey /etc/ssh/ssh_host_ed25519_key",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"UseDNS no",
		"MaxStartups 200:30:400",
		"MaxSessions 200",
		"",
	), "\n")
	type file struct {
		path string
		data string
		mode os.FileMode
	}
	files := []file{
		{"etc/hostname", h.Name + "\n", 0o644},
		{"etc/hosts", "127.0.0.1 localhost\n" + h.Address + " " + h.Name + "\n", 0o644},
		{"etc/machine-id", fmt.Sprintf("%x\n", id), 0o444},
		{"etc/ssh/ssh_host_ed25519_key", string(pem.EncodeToMemory(block)), 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", string(ssh.MarshalAuthorizedKey(h.HostKey)), 0o644},
		{"etc/ssh/sshd_config.d/driftless-test.conf", sshd, 0o644},
		{"root/.ssh/authorized_keys", h.lab.AuthorizedKey() + "\n", 0o600},
		// There is no DNS and no route out: fail name lookups at once.
		{"etc/resolv.conf", "options timeout:1 attempts:1\n", 0o644},
	}
	if h.rpm {
		files = append(files, file{"etc/yum.repos.d/driftless-test.repo", h.lab.yumRepo(), 0o644})
	} else {
		files = append(files, file{"etc/apt/sources.list", h.lab.sourcesList(), 0o644})
	}
	os.Remove(filepath.Join(h.Root, "etc/resolv.conf")) // it may be a symlink
	os.Remove(filepath.Join(h.Root, "etc/apt/sources.list.d/debian.sources"))
	for _, f := range files {
		p := filepath.Join(h.Root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("create folder for %s: %w", f.path, err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("write %s on %s: %w", f.path, h.Name, err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("chmod %s on %s: %w", f.path, h.Name, err)
		}
	}
	return nil
}

// waitSSH waits until sshd answers with its banner on port 22.
func (h *Host) waitSSH(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-h.exited:
			return fmt.Errorf("host %s exited before sshd answered (see %s)", h.Name, h.LogFile())
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // a failed read retries
			buf := make([]byte, 4)
			_, err = c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "SSH-" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s (%s) did not answer within %s: %v (see %s)", h.Name, h.Address, timeout, err, h.LogFile())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderPid is the host's PID 1 as seen from the root namespace: the child
// of the launcher (unshare or systemd-nspawn).
func (h *Host) leaderPid() (int, error) {
	if h.cmd == nil || h.cmd.Process == nil {
		return 0, fmt.Errorf("host %s is not running", h.Name)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.cmd.Process.Pid, h.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("find init of %s: %w", h.Name, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(data), &pid); err != nil {
		return 0, fmt.Errorf("host %s has no init process yet", h.Name)
	}
	return pid, nil
}

// Exec runs a shell script inside the host as root (all of its namespaces
// and its root), and returns its combined output. Tests use it to change a
// host behind driftless's back and to inspect it.
func (h *Host) Exec(script string) (string, error) {
	pid, err := h.leaderPid()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", fmt.Sprint(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
		"/bin/sh", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("exec on %s: %w: %s", h.Name, err, tail(out, 2000))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (h *Host) MustExec(t interface {
	Helper()
	Fatalf(string, ...any)
}, script string) string {
	t.Helper()
	out, err := h.Exec(script)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// SetLink takes the host's link to the bridge down or brings it back up,
// as a cable pulled and plugged in again: the host keeps running, and
// connections to it stall until the link is back.
func (h *Host) SetLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", h.veth, state).CombinedOutput(); err != nil {
		return fmt.Errorf("set link of %s %s: %v: %s", h.Name, state, err, out)
	}
	return nil
}
