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
			decl.checks = l.decodeChecks(d, v)
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

// decodeChecks decodes the verify steps and checks each: its shared
// settings here, its kind's own settings by its row of the check kinds'
// table (the values that are templates once rendered, per host).
func (l *loader) decodeChecks(d *decoder, n *yaml.Node) []checkDecl {
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
		l.validateCheck(d, item, &c, keys)
		cd := checkDecl{check: c, templates: parseCheckTemplates(d, &c, keys)}
		for _, p := range l.checkProblems(c) {
			if !templated(&c, p.Key) {
				d.errorf(atKey(item, keys, p.Key), "%s", p.Msg)
			}
		}
		out = append(out, cd)
	}
	return out
}

// checkProblems runs the check's kind's own validation; a check of no
// known kind has none (validateCheck reports it).
func (l *loader) checkProblems(c Check) []Problem {
	if k, ok := l.opts.Checks[c.Kind()]; ok {
		return k.Validate(c)
	}
	return nil
}

// templated reports whether the check's key holds a template (its
// problems are found once it is rendered, for each host; a template that
// does not parse has its own error).
func templated(c *Check, key string) bool {
	for _, f := range checkFields {
		if f.key == key {
			return strings.Contains(f.get(c), "{{")
		}
	}
	return false
}

// atKey is the value node of key, or the item itself.
func atKey(item *yaml.Node, keys map[string]*yaml.Node, key string) *yaml.Node {
	if n, ok := keys[key]; ok {
		return n
	}
	return item
}

// validateCheck checks the settings every verify step shares: one kind,
// retries, and the keys only some kinds have.
func (l *loader) validateCheck(d *decoder, item *yaml.Node, c *Check, keys map[string]*yaml.Node) {
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
	} else if _, ok := l.opts.Checks[kinds[0]]; !ok {
		d.errorf(keys[kinds[0]], "%s: this daemon has no such check kind", kinds[0])
	}
	if c.On != "" && c.Command == "" && c.JUnit == "" {
		d.errorf(atKey(item, keys, "on"), "on: only a command or junit check runs somewhere")
	}
	if c.JUnit == "" {
		for _, k := range []string{"report", "max_failures"} {
			if n, ok := keys[k]; ok {
				d.errorf(n, "%s: only a junit check has it", k)
			}
		}
	}
	if c.HTTP == "" {
		for _, k := range []string{"expect_status", "expect_body"} {
			if n, ok := keys[k]; ok {
				d.errorf(n, "%s: only an http check has it", k)
			}
		}
	}
	if c.Retries < 0 {
		d.errorf(atKey(item, keys, "retries"), "retries: must not be negative")
	}
}
