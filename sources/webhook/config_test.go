package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
)

func TestConfigOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "github.secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRIFTLESS_TEST_GITLAB_TOKEN", "from-env")
	o, err := ConfigOptions(config.Webhooks{
		GitHub:  config.Secret{File: file},
		GitLab:  config.Secret{Env: "DRIFTLESS_TEST_GITLAB_TOKEN"},
		Generic: config.GenericHook{Secret: config.Secret{Env: "DRIFTLESS_TEST_GITLAB_TOKEN"}, Header: "X-Sig"},
		Replay:  config.Duration(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Secrets.GitHub) != "from-file" || string(o.Secrets.GitLab) != "from-env" || string(o.Secrets.Generic) != "from-env" {
		t.Errorf("secrets = %q %q %q", o.Secrets.GitHub, o.Secrets.GitLab, o.Secrets.Generic)
	}
	if o.Secrets.Gitea != nil || o.Secrets.Bitbucket != nil {
		t.Error("unconfigured providers got a secret")
	}
	if o.GenericHeader != "X-Sig" || o.ReplayWindow != time.Hour {
		t.Errorf("header %q window %v", o.GenericHeader, o.ReplayWindow)
	}

	_, err = ConfigOptions(config.Webhooks{Bitbucket: config.Secret{File: filepath.Join(dir, "missing")}})
	if err == nil || !strings.Contains(err.Error(), "webhooks.bitbucket") {
		t.Fatalf("unreadable secret: err = %v, want one naming webhooks.bitbucket", err)
	}
}

func TestProviderNames(t *testing.T) {
	got := strings.Join(ProviderNames(), ",")
	if got != "bitbucket,forgejo,generic,gitea,github,gitlab,gogs" {
		t.Fatalf("ProviderNames() = %s", got)
	}
}
