package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// TestQuickstartExample loads the bundled example the demo runs and checks
// that it declares what its README promises, rendered for the local host
// and placed under the sandbox root.
func TestQuickstartExample(t *testing.T) {
	root := t.TempDir()
	rev, err := config.LoadRevision(filepath.Join("..", "examples", "quickstart"), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: root})
	if err != nil {
		t.Fatalf("load quickstart: %v", err)
	}
	env := rev.Environment("quickstart")
	if env == nil {
		t.Fatalf("no quickstart environment in %+v", rev.Environments)
	}
	if env.Drift != config.DriftEnforce {
		t.Errorf("drift = %q, want enforce", env.Drift)
	}
	if len(env.Hosts) != 1 {
		t.Fatalf("got %d hosts, want 1", len(env.Hosts))
	}
	h := env.Hosts[0]
	if h.Transport != "local" || h.Root != filepath.Join(root, h.Name) {
		t.Errorf("host transport %q root %q, want local under %s", h.Transport, h.Root, root)
	}
	byID := map[string]config.Resource{}
	for _, r := range h.Resources {
		byID[r.ID()] = r
	}
	conf, ok := byID["file:/etc/shop/app.conf"]
	if !ok {
		t.Fatalf("no app.conf among %v", ids(h.Resources))
	}
	content := conf.Spec.(*targets.FileSpec).Content
	for _, want := range []string{`listen = "127.0.0.1:8080"`, `release = "1.4.2"`, "for local (quickstart)"} {
		if !strings.Contains(content, want) {
			t.Errorf("rendered app.conf lacks %q:\n%s", want, content)
		}
	}
	if env, ok := byID["env:/etc/shop/app.env"]; !ok || env.Spec.(*targets.EnvSpec).Vars["APP_PORT"] != "8080" {
		t.Errorf("env file missing or wrong: %+v", env)
	}
	if l, ok := byID["symlink:/srv/shop/current"]; !ok || l.Spec.(*targets.SymlinkSpec).Target != "releases/1.4.2" {
		t.Errorf("release symlink missing or wrong: %+v", l)
	}
	if c, ok := byID["command:init-data"]; !ok || c.Spec.(*targets.CommandSpec).Creates == "" {
		t.Errorf("guarded command missing: %+v", c)
	}
	if len(h.Checks) != 1 || h.Checks[0].Name != "release 1.4.2 is live on local" || !strings.Contains(h.Checks[0].Command, `= "1.4.2"`) {
		t.Errorf("verify step not rendered for the host: %+v", h.Checks)
	}
	if _, ok := byID["directory:/etc/shop"]; !ok {
		t.Errorf("no directory among %v", ids(h.Resources))
	}
}

func ids(rs []config.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID())
	}
	return out
}
