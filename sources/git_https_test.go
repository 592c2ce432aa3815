package sources

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/syncbuf"
)

// TestGitOverHTTPS follows a repository served over real TLS that needs a
// token: with the server's certificate trusted and the right token the
// commit arrives; an untrusted certificate or a wrong token is a failed
// fetch that marks the source down and never shows the token.
func TestGitOverHTTPS(t *testing.T) {
	const token = "tls-tok-7e6d5c4b3a29"
	srv := gitserver.New(t)
	srv.CreateRepo("private")
	srv.RequireAuth("bot", token)
	ca := srv.StartTLS()
	url := srv.TLSRepoURL("private")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("TLS url %q", url)
	}
	work := srv.Clone(t, "private")
	sha := work.Commit(t, map[string]string{"environments/prod.yaml": "environment: prod\n"}, "first")
	work.Push(t)

	tests := []struct {
		name    string
		ca      []byte
		token   string
		ok      bool
		errPart string // expected in the error of a failed fetch
	}{
		{name: "trusted certificate and token", ca: ca, token: token, ok: true},
		{name: "untrusted certificate", ca: nil, token: token, errPart: "certificate"},
		{name: "wrong token", ca: ca, token: "not-the-token-0000", errPart: "authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			logs := &syncbuf.Buffer{}
			g, err := NewGit(GitOptions{
				Name:        "app",
				Config:      config.GitSource{URL: url, Interval: config.Duration(time.Hour)},
				Credentials: GitCredentials{Username: "bot", Token: tt.token},
				Dir:         filepath.Join(t.TempDir(), "state"),
				Logger:      zerolog.New(logs),
				Registerer:  reg,
				CABundle:    tt.ca,
			})
			if err != nil {
				t.Fatalf("NewGit: %v", err)
			}
			rev, err := g.pass(context.Background(), "")
			if tt.ok {
				if err != nil || rev == nil || rev.Commit != sha {
					t.Fatalf("pass = %+v, %v; want commit %s", rev, err, sha)
				}
				if got := readFile(t, filepath.Join(rev.Dir, "environments", "prod.yaml")); got != "environment: prod\n" {
					t.Errorf("checked out file = %q", got)
				}
			} else {
				if err == nil {
					t.Fatalf("pass succeeded with %+v", rev)
				}
				if !strings.Contains(strings.ToLower(err.Error()), tt.errPart) {
					t.Errorf("error %q does not say %q", err, tt.errPart)
				}
				if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), tt.token) {
					t.Errorf("token in error: %v", err)
				}
			}
			want := map[bool]float64{true: 1, false: 0}[tt.ok]
			if up := gauge(t, reg, "driftless_source_up"); up != want {
				t.Errorf("driftless_source_up = %v, want %v", up, want)
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("token in logs: %s", logs.String())
			}
		})
	}
}
