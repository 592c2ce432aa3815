package sources

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/syncbuf"
)

// sshServer is a real OpenSSH server on loopback that lets root log in with
// one key, so go-git runs git-upload-pack over it.
type sshServer struct {
	port      int
	hostKey   string // public host key line ("ssh-ed25519 AAAA...")
	clientKey []byte
}

func keygen(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	if os.Geteuid() != 0 {
		need.Missing(t, "needs root to run sshd for a Git over SSH test")
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		need.Missing(t, "sshd is not installed (openssh-server)")
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		need.Missing(t, "ssh-keygen is not installed (openssh-client)")
	}
	// sshd refuses to start without its privilege separation folder.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keygen(t, filepath.Join(dir, "host"))
	keygen(t, filepath.Join(dir, "client"))
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
PidFile none
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(hostPub))
	return &sshServer{port: port, hostKey: fields[0] + " " + fields[1], clientKey: key}
}

func TestGitOverSSHChecksTheHostKey(t *testing.T) {
	s := startSSHD(t)
	srv := gitserver.New(t)
	srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	sha := work.Commit(t, map[string]string{"f": "ssh\n"}, "a")
	work.Push(t)
	url := fmt.Sprintf("ssh://root@127.0.0.1:%d%s", s.port, srv.Dir("app"))

	other := t.TempDir()
	keygen(t, filepath.Join(other, "k"))
	otherPub, err := os.ReadFile(filepath.Join(other, "k.pub"))
	if err != nil {
		t.Fatal(err)
	}
	otherFields := strings.Fields(string(otherPub))
	hostPattern := fmt.Sprintf("[127.0.0.1]:%d", s.port)
	tests := []struct {
		name       string
		knownHosts string
		wantErr    string
	}{
		{"known host key", hostPattern + " " + s.hostKey + "\n", ""},
		{"different host key", hostPattern + " " + otherFields[0] + " " + otherFields[1] + "\n", "key mismatch"},
		{"host not listed", "[127.0.0.2]:22 " + s.hostKey + "\n", "key is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.knownHosts), 0o600); err != nil {
				t.Fatal(err)
			}
			g := newTestGit(t, config.GitSource{URL: url, KnownHosts: kh}, GitCredentials{SSHKey: s.clientKey})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rev, err := g.pass(ctx, "")
			if tt.wantErr == "" {
				if err != nil || rev == nil || rev.Commit != sha || readFile(t, filepath.Join(rev.Dir, "f")) != "ssh\n" {
					t.Fatalf("pass over ssh = %+v, %v; want %s", rev, err, sha)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("pass = %+v, %v; want an error containing %q", rev, err, tt.wantErr)
			}
		})
	}

	t.Run("no key", func(t *testing.T) {
		_, err := NewGit(GitOptions{Name: "x", Config: config.GitSource{URL: url}, Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "ssh_key") {
			t.Fatalf("NewGit without a key = %v", err)
		}
	})
}
