package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPreviewTTL is how long a preview environment lives after the
// newest commit of its pull request arrived, when its template does not say.
const DefaultPreviewTTL = Duration(72 * time.Hour)

// Provision creates and destroys the hosts of a preview environment. Both
// commands run on the daemon's machine with sh -c, and only as declared
// by the template on the followed branch, never by a pull request.
type Provision struct {
	// Create prints the hosts as Ansible dynamic inventory JSON.
	Create string `yaml:"create" json:"create"`
	// Destroy receives on its standard input what Create printed.
	Destroy string `yaml:"destroy" json:"destroy"`
	// Timeout bounds one run of either command (0: 10 minutes).
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	Pos     Position `yaml:"-" json:"-"`
}

// PreviewLoad asks LoadRevision for one preview environment of a pull
// request's checkout: the environment the template names, as the pull
// request declares its roles, resources, files and checks, renamed Name,
// with the template's settings (provisioner, traffic hooks, rollout,
// gates, drift) and with Hosts as its only hosts. The other environments
// of the checkout are validated and dropped.
type PreviewLoad struct {
	// Template is the template as the followed branch declares it.
	Template *Environment
	// Name is the preview environment's name (TEMPLATE-pr-N).
	Name string
	// Hosts are the hosts its provisioner created (none before).
	Hosts []InventoryHost
}

// PreviewName is the name of the preview environment of template for
// pull request n.
func PreviewName(template string, n int) string {
	return template + "-pr-" + strconv.Itoa(n)
}

// decodeProvision decodes `provision: {create, destroy, timeout}`.
func decodeProvision(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	p := &Provision{Pos: d.pos(n)}
	keys := d.decodeStruct(n, reflect.ValueOf(p).Elem(), "provision", nil)
	if n.Kind != yaml.MappingNode {
		return
	}
	if strings.TrimSpace(p.Create) == "" {
		d.errorf(n, "provision: needs create (a command printing the hosts as inventory JSON)")
	}
	if strings.TrimSpace(p.Destroy) == "" {
		d.errorf(n, "provision: needs destroy (a command receiving the hosts create printed)")
	}
	if p.Timeout < 0 {
		d.errorf(keys["timeout"], "provision.timeout: must not be negative")
	}
	env.Provision = p
}

// checkPreviewTemplate validates what a preview template may declare: hosts come
// from its provisioner only, and it is no one's upstream or downstream.
func checkPreviewTemplate(d *decoder, decl *envDecl, root *yaml.Node) {
	env := decl.env
	keys := map[string]*yaml.Node{}
	for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
		keys[root.Content[i].Value] = root.Content[i]
	}
	if !env.Preview {
		if k := keys["provision"]; k != nil {
			d.errorf(k, "provision: only a preview template (preview: true) has a provisioner")
		}
		if k := keys["preview_ttl"]; k != nil {
			d.errorf(k, "preview_ttl: only a preview template (preview: true) has a time to live")
		}
		return
	}
	if env.Provision == nil && keys["provision"] == nil {
		d.errorf(keys["preview"], "preview: a preview template needs provision: {create, destroy} for its hosts")
	}
	for _, k := range []string{"hosts", "inventory", "promote"} {
		if keys[k] != nil {
			d.errorf(keys[k], "%s: a preview template takes its hosts from its provisioner and no promotion (remove %s)", k, k)
		}
	}
	if env.PreviewTTL < 0 {
		d.errorf(keys["preview_ttl"], "preview_ttl: must not be negative")
	}
}

// TTL is the time to live of a template's preview environments.
func (e *Environment) TTL() Duration {
	if e.PreviewTTL > 0 {
		return e.PreviewTTL
	}
	return DefaultPreviewTTL
}

// templateDeclares reports whether the template t declares the check c
// (as declared, wherever it is).
func templateDeclares(t *Environment, c Check) bool {
	c.Pos = Position{}
	for _, tc := range t.Verify {
		tc.Pos = Position{}
		if tc == c {
			return true
		}
	}
	return false
}

// previewDecl turns the pull request's declaration of p's template into
// the preview environment (see PreviewLoad), or reports that the pull
// request does not declare it.
func (l *loader) previewDecl(decls []*envDecl, p *PreviewLoad) []*envDecl {
	var decl *envDecl
	for _, d := range decls {
		if d.env.Name == p.Template.Name {
			decl = d
		}
	}
	if decl == nil {
		l.errs.add(Position{File: "environments"}, "the revision does not declare environment %q (the template of preview %s)", p.Template.Name, p.Name)
		return nil
	}
	t, e := p.Template, decl.env
	// Checks on the daemon's machine (on: local) run with the daemon's
	// credentials, not on the preview's own hosts: only the template's.
	for _, c := range decl.checks {
		if c.check.On == "local" && !templateDeclares(t, c.check) {
			l.errs.add(c.check.Pos, "verify: a check on the daemon's machine (on: local) of preview %s must be declared as the template %s on the followed branch declares it: the pull request's would run its command with the daemon's credentials", p.Name, t.Name)
		}
	}
	e.Name, e.Preview, e.PreviewTTL, e.Provision = p.Name, false, t.PreviewTTL, t.Provision
	e.Drift, e.Prune, e.DriftInterval, e.Rollout = t.Drift, t.Prune, t.DriftInterval, t.Rollout
	e.Promote, e.Approval, e.Windows, e.Traffic, e.Inventory = nil, t.Approval, t.Windows, t.Traffic, nil
	decl.hosts = nil
	for _, ih := range p.Hosts {
		decl.hosts = append(decl.hosts, l.inventoryHost(decl, ih, e.Pos))
	}
	return []*envDecl{decl}
}
