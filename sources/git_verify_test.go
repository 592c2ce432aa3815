package sources

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

func newEntity(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", name+"@driftless.invalid", nil)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return e
}

// writePublicKeys writes the entities' armored public keys to a file.
func writePublicKeys(t *testing.T, entities ...*openpgp.Entity) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entities {
		if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// commitWith commits the file f with content, signed by key (unsigned
// when key is nil), and returns the commit id.
func commitWith(t *testing.T, work *gitserver.Repo, content string, key *openpgp.Entity) string {
	t.Helper()
	return work.CommitSigned(t, map[string]string{"f": content}, key, content)
}

func TestGitSignedCommits(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	trusted, stranger := newEntity(t, "trusted"), newEntity(t, "stranger")
	keys := writePublicKeys(t, trusted)

	g := newTestGit(t, config.GitSource{URL: url, SigningKeys: keys}, GitCredentials{})
	steps := []struct {
		name     string
		key      *openpgp.Entity
		accepted bool
		failures float64
	}{
		{"signed by a trusted key", trusted, true, 0},
		{"unsigned", nil, false, 1},
		{"signed by an unknown key", stranger, false, 2},
		{"signed again by the trusted key", trusted, true, 2},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			sha := commitWith(t, work, step.name, step.key)
			work.Push(t)
			rev, err := g.pass(context.Background(), "")
			if err != nil {
				t.Fatalf("pass: %v", err)
			}
			// A refused head is sent once, marked refused and without a
			// checkout, so that the reader can show it.
			if rev == nil || rev.Commit != sha || step.accepted != (rev.Refused == "") || (rev.Refused != "") != (rev.Dir == "") {
				t.Fatalf("revision = %+v, want commit %s accepted %v", rev, sha, step.accepted)
			}
			refused := 0.0
			if !step.accepted {
				refused = 1
			}
			if got := gauge(t, g.reg, "driftless_source_head_refused"); got != refused {
				t.Errorf("driftless_source_head_refused = %v, want %v", got, refused)
			}
			// Polling the same refused commit again sends and counts nothing more.
			if again, err := g.pass(context.Background(), ""); err != nil || again != nil {
				t.Fatalf("second pass = %+v, %v; want nothing", again, err)
			}
			if got := gauge(t, g.reg, "driftless_source_verify_failures_total"); got != step.failures && !(step.failures == 0 && got == -1) {
				t.Errorf("verify failures = %v, want %v", got, step.failures)
			}
		})
	}
	if !strings.Contains(g.log.String(), "commit refused") {
		t.Errorf("refusal not logged: %s", g.log.String())
	}

	t.Run("bad key file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.asc")
		if err := os.WriteFile(bad, []byte("not a key"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := NewGit(GitOptions{Name: "x", Config: config.GitSource{URL: url, SigningKeys: bad}, Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "signing keys") {
			t.Fatalf("NewGit with a bad key file = %v", err)
		}
	})
}
