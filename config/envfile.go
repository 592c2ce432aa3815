package config

import (
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadEnvFile decodes one environments/*.yaml file. Host-independent
// checks happen here; expand does the per-host work.
func (l *loader) loadEnvFile(file string) *envDecl {
	return l.decodeEnv(file, l.readYAML(file))
}

// decodeEnv decodes the parsed root node of an environment file.
func (l *loader) decodeEnv(file string, root *yaml.Node) *envDecl {
	if root == nil {
		return nil
	}
	d := newDecoder(file, &l.errs)
	env := &Environment{Pos: d.pos(root)}
	decl := &envDecl{env: env, file: file, roles: map[string]*roleDef{}}
	special := map[string]handler{
		"environment": func(k, v *yaml.Node) {
			decl.nameNode = v
			d.decodeValue(v, reflect.ValueOf(&env.Name).Elem(), "environment")
		},
		"drift": func(k, v *yaml.Node) {
			decl.driftNode = v
			d.decodeValue(v, reflect.ValueOf(&env.Drift).Elem(), "drift")
		},
		"hosts": func(k, v *yaml.Node) { decl.hosts = l.decodeHosts(d, v) },
		"verify": func(k, v *yaml.Node) {
			decl.checks = decodeChecks(d, v)
			// Verify keeps the checks as declared (templates unrendered),
			// for display; each host's rendered copies are in Host.Checks.
			for _, c := range decl.checks {
				env.Verify = append(env.Verify, c.check)
			}
		},
		"roles":     func(k, v *yaml.Node) { l.decodeInlineRoles(d, decl, v) },
		"rollout":   func(k, v *yaml.Node) { decodeRollout(d, &env.Rollout, v) },
		"promote":   func(k, v *yaml.Node) { decodePromote(d, env, v) },
		"approval":  func(k, v *yaml.Node) { decodeApproval(d, env, v) },
		"windows":   func(k, v *yaml.Node) { decodeWindows(d, env, v) },
		"traffic":   func(k, v *yaml.Node) { decodeTraffic(d, env, v) },
		"inventory": func(k, v *yaml.Node) { decodeInventory(d, env, v) },
		"provision": func(k, v *yaml.Node) { decodeProvision(d, env, v) },
	}
	// Keys starting with "x-" are free for the user: they hold YAML anchors
	// that hosts and resources merge in, as in Compose files.
	for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && strings.HasPrefix(k.Value, "x-") {
			special[k.Value] = func(k, v *yaml.Node) {}
		}
	}
	d.decodeStruct(root, reflect.ValueOf(env).Elem(), "an environment", special)
	if root.Kind != yaml.MappingNode {
		return nil
	}
	switch {
	case decl.nameNode == nil:
		d.errorf(root, "missing environment: every environment file names its environment with `environment: NAME`")
	case decl.nameNode.Kind != yaml.ScalarNode:
		// The wrong type is already reported by the decoder.
	case !nameRe.MatchString(env.Name):
		d.errorf(decl.nameNode, "environment: %q is not a valid name (letters, digits, '.', '_' and '-')", env.Name)
	default:
		env.Pos = d.pos(decl.nameNode)
	}
	checkPreviewTemplate(d, decl, root)
	if env.Drift == DriftInherit {
		env.Drift = DriftEnforce
	} else if !validDrift(env.Drift) {
		d.errorf(decl.driftNode, "drift: %q is not one of enforce, warn, ignore", env.Drift)
	}
	return decl
}

// decodeHosts decodes the hosts list; each host's own resources are kept
// aside for expand.
func (l *loader) decodeHosts(d *decoder, n *yaml.Node) []*hostDecl {
	if n = d.visit(n); n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "hosts: expected a list of hosts, got %s", kindName(n))
		return nil
	}
	var out []*hostDecl
	for _, item := range n.Content {
		item = d.visit(item)
		if item == nil {
			continue
		}
		h := &hostDecl{host: &Host{Pos: d.pos(item)}}
		h.keys = d.decodeStruct(item, reflect.ValueOf(h.host).Elem(), "a host", map[string]handler{
			"resources": func(k, v *yaml.Node) { h.resources = l.decodeResources(d, v, "resources") },
			"roles": func(k, v *yaml.Node) {
				h.host.Roles, _ = d.stringList(v, "roles")
				if v = d.visit(v); v != nil && v.Kind == yaml.SequenceNode {
					for _, r := range v.Content {
						if r.Kind == yaml.ScalarNode {
							h.roleNodes = append(h.roleNodes, r)
						}
					}
				}
			},
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		out = append(out, h)
	}
	return out
}

// decodeInlineRoles decodes an environment's `roles:` map of name to
// resource list. Inline roles are visible to that environment only.
func (l *loader) decodeInlineRoles(d *decoder, decl *envDecl, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "roles: expected a mapping of role name to resources, got %s", kindName(n))
		return
	}
	for _, p := range d.pairs(n) {
		name := p.key.Value
		if !nameRe.MatchString(name) {
			d.errorf(p.key, "role %q is not a valid name (letters, digits, '.', '_' and '-')", name)
			continue
		}
		if global, dup := l.roles[name]; dup {
			d.errorf(p.key, "role %q is already declared at %s", name, global.pos)
			continue
		}
		decl.roles[name] = &roleDef{name: name, pos: d.pos(p.key), resources: l.decodeResources(d, p.val, "roles."+name)}
	}
}

// decodeRollout decodes the rollout settings, none of which may be negative.
func decodeRollout(d *decoder, r *Rollout, n *yaml.Node) {
	keys := d.decodeStruct(n, reflect.ValueOf(r).Elem(), "rollout", nil)
	for key, val := range map[string]int{"canary": r.Canary, "batch": r.Batch, "parallelism": r.Parallelism, "max_failed": r.MaxFailed} {
		if val < 0 {
			d.errorf(keys[key], "rollout %s: must not be negative, got %d", key, val)
		}
	}
}

// decodeChecks decodes the verify steps and checks each has one kind.
func decodeChecks(d *decoder, n *yaml.Node) []checkDecl {
	if n = d.visit(n); n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "verify: expected a list of checks, got %s", kindName(n))
		return nil
	}
	var out []checkDecl
	for _, item := range n.Content {
		item = d.visit(item)
		if item == nil {
			continue
		}
		c := Check{Pos: d.pos(item)}
		keys := d.decodeStruct(item, reflect.ValueOf(&c).Elem(), "a check", nil)
		if item.Kind != yaml.MappingNode {
			continue
		}
		validateCheck(d, item, &c, keys)
		out = append(out, checkDecl{check: c, templates: parseCheckTemplates(d, &c, keys)})
	}
	return out
}

// validateCheck checks one verify step's host-independent settings.
func validateCheck(d *decoder, item *yaml.Node, c *Check, keys map[string]*yaml.Node) {
	var kinds []string
	for _, k := range []string{"http", "tcp", "command", "prometheus", "junit"} {
		if _, ok := keys[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		found := "none"
		if len(kinds) > 0 {
			found = strings.Join(kinds, ", ")
		}
		d.errorf(item, "a check needs exactly one of http, tcp, command, prometheus or junit (found: %s)", found)
	}
	at := func(key string) *yaml.Node {
		if n, ok := keys[key]; ok {
			return n
		}
		return item
	}
	if c.On != "" && c.On != "host" && c.On != "local" {
		d.errorf(at("on"), "on: %q is not one of host, local", c.On)
	}
	if c.On != "" && c.Command == "" && c.JUnit == "" {
		d.errorf(at("on"), "on: only a command or junit check runs somewhere")
	}
	if c.JUnit == "" {
		for _, k := range []string{"report", "max_failures"} {
			if n, ok := keys[k]; ok {
				d.errorf(n, "%s: only a junit check has it", k)
			}
		}
	}
	if c.MaxFailures < 0 {
		d.errorf(at("max_failures"), "max_failures: must not be negative")
	}
	// Templated values are checked once rendered for each host.
	for key, v := range map[string]string{"http": c.HTTP, "tcp": c.TCP, "server": c.Server} {
		if v != "" && !strings.Contains(v, "{{") {
			if err := checkCheckField(key, v); err != nil {
				d.errorf(at(key), "%s: %v", key, err)
			}
		}
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		d.errorf(at("expect_status"), "expect_status: %d is not an HTTP status", c.ExpectStatus)
	}
	if c.Retries < 0 {
		d.errorf(at("retries"), "retries: must not be negative")
	}
	if c.Prometheus != "" {
		if c.Server == "" {
			d.errorf(item, "a prometheus check needs server (the Prometheus base URL)")
		}
		if !contains([]string{"<", "<=", ">", ">=", "==", "!="}, c.Op) {
			d.errorf(at("op"), "op: %q is not one of <, <=, >, >=, ==, !=", c.Op)
		}
	}
}
