package ssh_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

// TestRefusedHostGetsNoCredentials reads the host's own sshd log (at
// VERBOSE, which records every public key offered): a host whose key is
// not the expected one sees the connection and the key exchange, but no
// user authentication at all, so not even our public key reaches it. The
// accepted connection afterwards shows what an authentication looks like
// in the same log, so the check can fail.
func TestRefusedHostGetsNoCredentials(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{SSHDConfig: []string{"LogLevel VERBOSE"}})
	h := lab.Kind1("nocreds")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		cfg  ssh.Config
		want error
	}{
		{"pinned key differs", ssh.Config{PinnedKey: string(gossh.MarshalAuthorizedKey(wrong))}, ssh.ErrHostKeyMismatch},
		{"not in known_hosts", ssh.Config{KnownHostsFile: empty}, ssh.ErrHostKeyUnknown},
	}
	for _, tt := range refused {
		cfg := tt.cfg
		cfg.Address, cfg.KeyFiles = h.Address, []string{lab.ClientKeyFile}
		if tr, err := ssh.Dial(t.Context(), cfg); !errors.Is(err, tt.want) {
			if tr != nil {
				tr.Close()
			}
			t.Fatalf("%s: dial: %v, want %v", tt.name, err, tt.want)
		}
	}
	// The harness's own readiness probe also connects, and is reset before
	// the key exchange: count the connections our dials closed, once sshd
	// has logged them (it writes after the client has gone).
	var log []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log, _ = os.ReadFile(h.LogFile()); strings.Count(string(log), "[preauth]") >= len(refused) {
			break
		}
	}
	if n := strings.Count(string(log), "[preauth]"); n != len(refused) {
		t.Fatalf("sshd logged %d connections closed before authentication, want %d (is LogLevel VERBOSE in effect?):\n%s", n, len(refused), log)
	}
	if strings.Contains(string(log), "publickey") {
		t.Fatalf("a host whose key was refused saw an authentication attempt:\n%s", log)
	}

	tr := dial(t, lab, h, nil)
	tr.Close()
	if log, _ := os.ReadFile(h.LogFile()); !strings.Contains(string(log), "Accepted publickey") {
		t.Fatalf("the accepted login is not in the log, so the check above proves nothing:\n%s", log)
	}
}
