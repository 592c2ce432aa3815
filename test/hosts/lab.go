package hosts

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/driftless/driftless/test/need"
)

// runDir holds the lab slot locks; it is on tmpfs so a reboot frees all slots.
const runDir = "/run/driftless-testbed"

// Options tunes a Lab. The zero value is what most tests want.
type Options struct {
	// Logf receives progress messages; nil means t.Logf.
	Logf func(format string, args ...any)
	// SSHDConfig holds extra sshd_config lines for every host of the lab
	// (for example "MaxSessions 10"); they take precedence over the
	// harness's own settings, since sshd keeps the first value it reads.
	SSHDConfig []string
}

// Lab is one isolated network of test hosts: a bridge dlbr<N> with the
// subnet 10.77.N.0/24 in the root namespace, and hosts attached to it. N is
// unique among the labs of all running processes.
type Lab struct {
	// N is the lab's slot: bridge dlbr<N>, subnet 10.77.N.0/24.
	N int
	// Bridge is the bridge interface in the root namespace.
	Bridge string
	// BridgeIP is the root namespace's address on the bridge (10.77.N.1);
	// hosts reach services the test starts on it.
	BridgeIP string
	// ClientKeyFile is an OpenSSH private key (no passphrase) that every
	// host of the lab accepts for root.
	ClientKeyFile string
	// Signer is the same client key for Go SSH clients.
	Signer ssh.Signer
	// KnownHostsFile lists the host key of every host started so far.
	KnownHostsFile string

	t      testing.TB
	opts   Options
	logf   func(string, ...any)
	dir    string
	lower  string
	slot   *os.File
	mu     sync.Mutex
	nextIP int
	hosts  []*Host
	apt    *aptRepo
	deb    bool // the repository server has an apt repository
	rpm    bool // and an rpm one, under /rpm/
}

// NewLab prepares a lab for one test (or one TestMain via a testing.TB) and
// tears everything down in t.Cleanup. It skips the test when not root or
// when a tool the test bed needs is missing.
func NewLab(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		need.Missing(t, "test hosts need root (network namespaces, overlay mounts)")
	}
	for _, tool := range []string{"debootstrap", "ip", "unshare", "nsenter", "chroot", "tar", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			need.Missing(t, "test hosts need %s, which is not installed (run test/install-deps.sh)", tool)
		}
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		need.Missing(t, "test hosts need openssh-server's sshd, which is not installed (run test/install-deps.sh)")
	}
	l := &Lab{t: t, opts: opts, logf: opts.Logf, dir: t.TempDir(), nextIP: 10}
	if l.logf == nil {
		l.logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	lower, err := lowerDir(ctx, l.logf)
	if err != nil {
		t.Fatalf("prepare the test-host base: %v", err)
	}
	l.lower = lower
	if err := CleanStale(); err != nil {
		t.Fatalf("clean stale labs: %v", err)
	}
	if err := l.claimSlot(); err != nil {
		t.Fatalf("claim a lab slot: %v", err)
	}
	t.Cleanup(l.teardown)
	if err := l.setup(); err != nil {
		t.Fatalf("set up lab %d: %v", l.N, err)
	}
	return l
}

// claimSlot takes the first free slot N. A slot is held by a flock on
// runDir/lab<N>.lock for as long as this process lives, so a slot whose
// lock is free but which still has leftovers belongs to a killed run and
// is cleaned before reuse.
func (l *Lab) claimSlot() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runDir, err)
	}
	for n := 1; n < 250; n++ {
		f, err := os.OpenFile(filepath.Join(runDir, fmt.Sprintf("lab%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("open slot lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		l.N, l.slot = n, f
		l.Bridge = fmt.Sprintf("dlbr%d", n)
		l.BridgeIP = fmt.Sprintf("10.77.%d.1", n)
		cleanSlot(n)
		if err := os.WriteFile(l.stateFile(), []byte(l.dir+"\n"), 0o644); err != nil {
			return fmt.Errorf("record lab dir: %w", err)
		}
		return nil
	}
	return fmt.Errorf("all lab slots under %s are taken", runDir)
}

func (l *Lab) stateFile() string { return filepath.Join(runDir, fmt.Sprintf("lab%d.dir", l.N)) }

// CleanStale removes what killed runs left in every lab slot no running
// process holds: processes in their namespaces, veths, namespaces,
// bridges, cgroups and overlay mounts. NewLab calls it; it is exported for
// tools and tests that want a clean machine.
func CleanStale() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runDir, err)
	}
	locks, err := filepath.Glob(filepath.Join(runDir, "lab*.lock"))
	if err != nil {
		return fmt.Errorf("list lab slots: %w", err)
	}
	for _, lock := range locks {
		var n int
		if _, err := fmt.Sscanf(filepath.Base(lock), "lab%d.lock", &n); err != nil {
			continue
		}
		f, err := os.OpenFile(lock, os.O_RDWR, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			cleanSlot(n)
		}
		f.Close()
	}
	return nil
}

// cleanSlot removes the leftovers of slot n; its lock must be held.
func cleanSlot(n int) {
	state := filepath.Join(runDir, fmt.Sprintf("lab%d.dir", n))
	nss, _ := os.ReadDir("/run/netns")
	for _, ns := range nss {
		if strings.HasPrefix(ns.Name(), fmt.Sprintf("dl%dh", n)) {
			killNetnsPids(ns.Name())
			quiet("ip", "netns", "del", ns.Name())
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, ln := range links {
		if strings.HasPrefix(ln.Name(), fmt.Sprintf("dl%dv", n)) {
			quiet("ip", "link", "del", ln.Name())
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", fmt.Sprintf("dlbr%d", n))); err == nil {
		quiet("ip", "link", "del", fmt.Sprintf("dlbr%d", n))
	}
	for _, root := range cgroupRoots() {
		stale, _ := filepath.Glob(filepath.Join(root, "driftless-testbed", fmt.Sprintf("dl%d-*", n)))
		for _, cg := range stale {
			removeCgroupTree(cg)
		}
	}
	if old, err := os.ReadFile(state); err == nil {
		dir := strings.TrimSpace(string(old))
		unmountUnder(dir)
		os.RemoveAll(dir)
		os.Remove(state)
	}
}

// setup creates the bridge and the client key.
func (l *Lab) setup() error {
	steps := [][]string{
		{"ip", "link", "add", l.Bridge, "type", "bridge"},
		{"ip", "addr", "add", l.BridgeIP + "/24", "dev", l.Bridge},
		{"ip", "link", "set", l.Bridge, "up"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate client key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "driftless-test")
	if err != nil {
		return fmt.Errorf("encode client key: %w", err)
	}
	l.ClientKeyFile = filepath.Join(l.dir, "id_ed25519")
	if err := os.WriteFile(l.ClientKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write client key: %w", err)
	}
	if l.Signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return fmt.Errorf("client signer: %w", err)
	}
	l.KnownHostsFile = filepath.Join(l.dir, "known_hosts")
	return os.WriteFile(l.KnownHostsFile, nil, 0o644)
}

// AuthorizedKey is the client key as an authorized_keys line.
func (l *Lab) AuthorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(l.Signer.PublicKey())))
}

// Hosts returns the hosts started so far, in order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Exec runs a shell script inside host h, as root, behind driftless's back,
// and returns its combined output.
func (l *Lab) Exec(h *Host, script string) (string, error) { return h.Exec(script) }

// teardown stops every host still running, then removes the bridge and
// releases the slot.
func (l *Lab) teardown() {
	for _, h := range l.Hosts() {
		h.Stop()
	}
	if l.apt != nil {
		l.apt.stop()
	}
	quiet("ip", "link", "del", l.Bridge)
	unmountUnder(l.dir)
	os.Remove(l.stateFile())
	if l.slot != nil {
		l.slot.Close()
	}
}

// allocIP hands out the next host address of the lab.
func (l *Lab) allocIP() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nextIP > 250 {
		return "", fmt.Errorf("lab %d has no free address left", l.N)
	}
	ip := fmt.Sprintf("10.77.%d.%d", l.N, l.nextIP)
	l.nextIP++
	return ip, nil
}

// addHost records a started host and adds it to the known_hosts file.
func (l *Lab) addHost(h *Host) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hosts = append(l.hosts, h)
	f, err := os.OpenFile(l.KnownHostsFile, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open known_hosts: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(h.KnownHostsLine() + "\n"); err != nil {
		return fmt.Errorf("append known_hosts: %w", err)
	}
	return nil
}
