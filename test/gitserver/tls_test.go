package gitserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every test starts
// HTTP servers, which must stop with the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStartTLS lists a repository over HTTPS with the git command line:
// trusting the returned certificate it sees the pushed commit; without it
// the certificate is refused.
func TestStartTLS(t *testing.T) {
	srv := New(t)
	srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	sha := work.Commit(t, map[string]string{"a": "b"}, "first")
	work.Push(t)
	ca := srv.StartTLS()
	if again := srv.StartTLS(); string(again) != string(ca) {
		t.Fatal("a second StartTLS started another server")
	}
	url := srv.TLSRepoURL("app")
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("TLS url = %q", url)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Git(t.TempDir(), "-c", "http.sslCAInfo="+caFile, "ls-remote", url)
	if err != nil || !strings.Contains(out, sha+"\trefs/heads/main") {
		t.Fatalf("ls-remote over TLS: %q, %v", out, err)
	}
	if _, err := Git(t.TempDir(), "ls-remote", url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("ls-remote without the certificate: %v, want a certificate error", err)
	}
}
