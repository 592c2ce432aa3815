package sources

import (
	"testing"
	"time"

	"github.com/driftless/driftless/config"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{6, 32 * time.Second}, {7, time.Minute}, {50, time.Minute},
	}
	for _, tt := range tests {
		if got := backoff(tt.failures, time.Second, time.Minute); got != tt.want {
			t.Errorf("backoff(%d) = %s, want %s", tt.failures, got, tt.want)
		}
	}
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(time.Minute)
		if d < 54*time.Second || d > 66*time.Second {
			t.Fatalf("jitter(1m) = %s, outside ±10%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("jitter gave only %d distinct values", len(seen))
	}
}

func TestResolveGitCredentials(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/token", "tok-from-file\n")
	env := map[string]string{"GIT_PASSWORD": "pw-from-env"}
	getenv := func(k string) string { return env[k] }

	creds, err := ResolveGitCredentials(config.GitSource{
		Username: "bot",
		Token:    config.Secret{File: dir + "/token"},
		Password: config.Secret{Env: "GIT_PASSWORD"},
	}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Token != "tok-from-file" || creds.Password != "pw-from-env" || creds.Username != "bot" {
		t.Errorf("credentials = %+v", creds)
	}
	bad := []config.GitSource{
		{Token: config.Secret{File: dir + "/missing"}},
		{Password: config.Secret{Env: "UNSET_VARIABLE"}},
		{SSHKey: config.Secret{File: dir + "/missing-key"}},
	}
	for _, cfg := range bad {
		if _, err := ResolveGitCredentials(cfg, getenv); err == nil {
			t.Errorf("ResolveGitCredentials(%+v) succeeded", cfg)
		}
	}
}
