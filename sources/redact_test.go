package sources

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

// TestGitCredentialsNeverLeak follows a repository that needs auth, with the
// right token and with wrong credentials, and checks that no secret reaches
// an error or a log line.
func TestGitCredentialsNeverLeak(t *testing.T) {
	const token = "tok-4f9a8b7c6d5e"
	const wrong = "wrong-pa55word-xyz"
	srv := gitserver.New(t)
	url := srv.CreateRepo("private")
	srv.RequireAuth("bot", token)
	work := srv.Clone(t, "private")
	sha := work.Commit(t, map[string]string{"f": "x"}, "x")
	work.Push(t)

	t.Run("token", func(t *testing.T) {
		g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{Username: "bot", Token: token})
		out := run(t, g)
		if rev := receive(t, out, 10*time.Second); rev.Commit != sha {
			t.Fatalf("revision %+v, want %s", rev, sha)
		}
		if strings.Contains(g.log.String(), token) {
			t.Errorf("token in logs: %s", g.log.String())
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{})
		if _, err := g.pass(context.Background(), ""); err == nil {
			t.Fatal("fetch without credentials succeeded")
		}
	})
	cases := map[string]struct {
		url   string
		creds GitCredentials
	}{
		"wrong password":   {url, GitCredentials{Username: "bot", Password: wrong}},
		"wrong url secret": {strings.Replace(url, "http://", "http://bot:"+wrong+"@", 1), GitCredentials{}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			g := newTestGit(t, config.GitSource{URL: c.url, Interval: config.Duration(100 * time.Millisecond)}, c.creds)
			_, err := g.pass(context.Background(), "")
			if err == nil {
				t.Fatal("fetch with wrong credentials succeeded")
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), token) {
				t.Errorf("secret in error: %v", err)
			}
			out := run(t, g)
			expectNone(t, out, 300*time.Millisecond)
			logs := g.log.String()
			if !strings.Contains(logs, "git fetch failed") {
				t.Errorf("failure not logged: %s", logs)
			}
			if strings.Contains(logs, wrong) || strings.Contains(logs, token) {
				t.Errorf("secret in logs: %s", logs)
			}
		})
	}
}
