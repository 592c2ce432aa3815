package ssh_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "not-a-key")
	os.WriteFile(key, []byte("hello"), 0o600)
	tests := []struct {
		name string
		cfg  ssh.Config
		want string
	}{
		{"no address", ssh.Config{KeyFiles: []string{key}}, "no address"},
		{"no credentials", ssh.Config{Address: "127.0.0.1"}, "nothing to authenticate with"},
		{"bad port", ssh.Config{Address: "127.0.0.1", Port: 70000, KeyFiles: []string{key}}, "port 70000 out of range"},
		{"missing key file", ssh.Config{Address: "127.0.0.1", KeyFiles: []string{filepath.Join(dir, "absent")}, PinnedKey: "x"}, "read ssh key"},
		{"unparsable key", ssh.Config{Address: "127.0.0.1", KeyFiles: []string{key}, PinnedKey: "x"}, "parse ssh key " + key},
		{"agent without socket", ssh.Config{Address: "127.0.0.1", Agent: true, PinnedKey: "x"}, "SSH_AUTH_SOCK is not set"},
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ssh.Dial(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigErrorsOnHost(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("cfg")
	tests := []struct {
		name string
		cfg  ssh.Config
		want string
	}{
		{"bad pinned key", ssh.Config{PinnedKey: "ssh-ed25519 not-base64"}, "parse pinned host key"},
		{"missing known_hosts", ssh.Config{KnownHostsFile: filepath.Join(t.TempDir(), "absent")}, "read known hosts"},
		{"key not authorized", ssh.Config{KnownHostsFile: lab.KnownHostsFile, KeyFiles: []string{h.Root + "/etc/ssh/ssh_host_ed25519_key"}}, "unable to authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Address = h.Address
			if cfg.KeyFiles == nil {
				cfg.KeyFiles = []string{lab.ClientKeyFile}
			}
			_, err := ssh.Dial(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestAgent(t *testing.T) {
	for _, tool := range []string{"ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			need.Missing(t, "%s (openssh-client) is not installed", tool)
		}
	}
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("agent")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Process.Kill()
		agent.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not create its socket")
		}
	}
	add := exec.Command("ssh-add", lab.ClientKeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	tr := dial(t, lab, h, func(c *ssh.Config) { c.KeyFiles, c.Agent = nil, true })
	if res, err := tr.Run(context.Background(), "hostname", nil); err != nil || string(res.Stdout) != "agent\n" {
		t.Fatalf("run with an agent key: %q %v", res.Stdout, err)
	}
	// The agent connection is only needed for the handshake: a reconnect
	// opens it again.
	fresh, err := tr.Redial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()
}

func TestFrozenPeerRecovers(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("frozen")
	tr := dial(t, lab, h, func(c *ssh.Config) { c.Keepalive, c.Timeout = 200*time.Millisecond, 2*time.Second })
	ctx := context.Background()
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	// Freeze the process serving the connection: the TCP connection stays
	// up but nothing answers, like a hung host or a dropped route.
	h.MustExec(t, `for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = 1 ] || [ "$p" = $$ ] || kill -STOP "$p" 2>/dev/null; done; true`)
	var err error
	var res []byte
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		var r targets.Result
		if r, err = tr.Run(ctx, "echo back", nil); err == nil {
			res = r.Stdout
			break
		}
	}
	if err != nil || string(res) != "back\n" {
		t.Fatalf("the transport did not recover from a frozen connection: %q %v", res, err)
	}
}

func TestPoolSharesOneDial(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("shared")
	pool := ssh.NewPool(ssh.Config{KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile}, 0)
	defer pool.Close()
	got := make([]*ssh.Transport, 10)
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	errs := ssh.ForEach(context.Background(), 10, idx, func(ctx context.Context, i int) error {
		tr, err := pool.Get(ctx, "shared", ssh.Config{Address: h.Address})
		got[i] = tr
		return err
	})
	for i := range idx {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("Get %d: %v (same transport: %v)", i, errs[i], got[i] == got[0])
		}
	}
	// ForEach gives items not started before the context ended its error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs = ssh.ForEach(ctx, 1, idx, func(context.Context, int) error { return nil })
	for _, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ForEach after cancel: %v", errs)
		}
	}
}

func TestKind2Host(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("systemd")
	tr := dial(t, lab, h, nil)
	ctx := context.Background()
	unit := "[Service]\nExecStart=/bin/sleep 600\n"
	if err := tr.WriteFile(ctx, "/etc/systemd/system/dl-test.service", []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(ctx, "systemctl daemon-reload && systemctl start dl-test && systemctl is-active dl-test", nil)
	if err != nil || res.Exit != 0 || string(res.Stdout) != "active\n" {
		t.Fatalf("start a unit over ssh: %q %q exit %d %v", res.Stdout, res.Stderr, res.Exit, err)
	}
	if out := h.MustExec(t, "systemctl is-active dl-test"); out != "active\n" {
		t.Fatalf("the unit is not running on the host: %q", out)
	}
}

func TestConcurrentRuns(t *testing.T) {
	// OpenSSH's default of 10 sessions per connection, as on a real host.
	lab := hosts.NewLab(t, hosts.Options{SSHDConfig: []string{"MaxSessions 10"}})
	h := lab.Kind1("busy")
	tr := dial(t, lab, h, func(c *ssh.Config) { c.Timeout = time.Minute })
	items := make([]int, 40)
	for i := range items {
		items[i] = i
	}
	errs := ssh.ForEach(context.Background(), len(items), items, func(ctx context.Context, i int) error {
		res, err := tr.Run(ctx, "sleep 0.2; echo $1", nil)
		if err != nil {
			return err
		}
		if res.Exit != 0 {
			return errors.New(string(res.Stderr))
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			log, _ := os.ReadFile(h.LogFile())
			t.Fatalf("run %d of %d concurrent runs on one connection: %v\n%s", i, len(items), err, log)
		}
	}
	if got := tr.RoundTrips(); got != int64(len(items)) {
		t.Fatalf("RoundTrips %d, want %d", got, len(items))
	}
	// All of it went over one connection: sessions refused by the server's
	// limit were retried, not taken for a broken connection.
	if log, _ := os.ReadFile(h.LogFile()); strings.Count(string(log), "Accepted publickey") != 1 {
		t.Fatalf("want exactly one login in the sshd log:\n%s", log)
	}
}
