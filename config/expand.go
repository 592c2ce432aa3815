package config

import (
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/driftless/driftless/internal/redact"
)

// expand applies host defaults, expands each host's roles then its own
// resources into Host.Resources, renders templates and checks for the host,
// and checks what can only be checked per host: duplicate identities and
// requires/notify references.
func (l *loader) expand(decl *envDecl) {
	env := decl.env
	d := newDecoder(decl.file, &l.errs)
	names := map[string]Position{}
	for _, hd := range decl.hosts {
		h := hd.host
		env.Hosts = append(env.Hosts, h)
		switch first, dup := names[h.Name]; {
		case h.Name == "":
			l.errs.add(h.Pos, "a host needs a name")
		case !nameRe.MatchString(h.Name):
			l.errs.add(l.keyPos(d, hd, "name", h.Pos), "name: %q is not a valid host name (letters, digits, '.', '_' and '-')", h.Name)
		case dup:
			l.errs.add(l.keyPos(d, hd, "name", h.Pos), "host %q is already declared at %s", h.Name, first)
		default:
			names[h.Name] = l.keyPos(d, hd, "name", h.Pos)
		}
		l.hostDefaults(d, hd)
		l.loadVarsFiles(d, hd)
		data := newTemplateData(env, h)
		rendered := map[int]bool{}
		add := func(raw *rawResource) {
			res, templated := l.instantiate(raw, h, data)
			rendered[len(h.Resources)] = templated
			h.Resources = append(h.Resources, res)
		}
		seenRoles := map[string]bool{}
		for i, name := range h.Roles {
			pos := h.Pos
			if i < len(hd.roleNodes) {
				pos = d.pos(hd.roleNodes[i])
			}
			if seenRoles[name] {
				l.errs.add(pos, "role %q is listed twice for host %s", name, h.Name)
				continue
			}
			seenRoles[name] = true
			role := decl.roles[name]
			if role == nil {
				role = l.roles[name]
			}
			if role == nil && l.brokenRoles[name] {
				continue
			}
			if role == nil {
				if s := suggest(name, l.roleNames(decl)); s != "" {
					l.errs.add(pos, "unknown role %q; did you mean %q?", name, s)
				} else {
					l.errs.add(pos, "unknown role %q (declare it in roles/ or under the environment's roles:)", name)
				}
				continue
			}
			for _, raw := range role.resources {
				add(raw)
			}
		}
		for _, raw := range hd.resources {
			add(raw)
		}
		l.markSecrets(h, rendered)
		l.checkReferences(h, append(l.rolesResources(decl, h), hd.resources...))
		for _, cd := range decl.checks {
			h.Checks = append(h.Checks, l.renderCheck(cd, h, data))
		}
	}
}

// keyPos is the position of a host key's value, or def when absent.
func (l *loader) keyPos(d *decoder, hd *hostDecl, key string, def Position) Position {
	if n, ok := hd.keys[key]; ok && n != nil {
		return d.pos(n)
	}
	return def
}

// hostDefaults fills and checks the transport settings of a host.
func (l *loader) hostDefaults(d *decoder, hd *hostDecl) {
	h := hd.host
	// A port of the wrong type is reported by the decoder, and left at 0.
	if n := hd.keys["port"]; n != nil && n.ShortTag() == "!!int" && (h.Port < 1 || h.Port > 65535) {
		l.errs.add(l.keyPos(d, hd, "port", h.Pos), "port: %d is not a TCP port (1 to 65535)", h.Port)
	}
	if h.Transport == "" {
		h.Transport = "ssh"
		if h.Address == "" || h.Address == "local" {
			h.Transport = "local"
		}
	}
	switch h.Transport {
	case "local":
		if h.Root != "" && !filepath.IsAbs(h.Root) {
			l.errs.add(l.keyPos(d, hd, "root", h.Pos), "root: %q must be absolute", h.Root)
		}
		if l.opts.LocalRoot != "" && h.Name != "" {
			h.Root = filepath.Join(l.opts.LocalRoot, h.Name)
		}
	case "ssh":
		if h.Address == "" || h.Address == "local" {
			l.errs.add(h.Pos, "host %s uses ssh and needs an address", h.Name)
		} else if err := checkHost(h.Address); err != nil {
			l.errs.add(l.keyPos(d, hd, "address", h.Pos), "address: %v", err)
		}
		if h.Root != "" {
			l.errs.add(l.keyPos(d, hd, "root", h.Pos), "root: only the local transport takes a root")
		}
		if h.Port == 0 {
			h.Port = 22
		}
	default:
		l.errs.add(l.keyPos(d, hd, "transport", h.Pos), "transport: %q is not one of local, ssh", h.Transport)
	}
}

// rolesResources returns the declared resources the host's roles bring,
// in order, for reference checks.
func (l *loader) rolesResources(decl *envDecl, h *Host) []*rawResource {
	var out []*rawResource
	seen := map[string]bool{}
	for _, name := range h.Roles {
		if seen[name] {
			continue
		}
		seen[name] = true
		role := decl.roles[name]
		if role == nil {
			role = l.roles[name]
		}
		if role != nil {
			out = append(out, role.resources...)
		}
	}
	return out
}

// instantiate makes the host's copy of a declared resource, and reports
// whether a template was rendered for it. The spec is copied so that
// per-host rendering (and any later change by a driver) never leaks into
// another host.
func (l *loader) instantiate(raw *rawResource, h *Host, data templateData) (Resource, bool) {
	r := raw.res
	spec := reflect.New(reflect.TypeOf(r.Spec).Elem())
	spec.Elem().Set(reflect.ValueOf(r.Spec).Elem())
	r.Spec = spec.Interface()
	r.Requires = append([]string(nil), raw.res.Requires...)
	r.Notify = append([]string(nil), raw.res.Notify...)
	if l.varsUnknown[h] {
		// The host's variables were not decrypted: its templates are not
		// rendered, and what they make is unknown.
		r.Undecrypted = r.Undecrypted || raw.tmpl != nil || raw.envTmpls != nil
		return r, false
	}
	switch {
	case raw.tmpl != nil:
		out, err := l.render(raw.tmpl, data)
		if err != nil {
			pos, msg, ok := budgetErrPos(raw.tmpl, raw.tmplFile, err)
			if !ok {
				pos, msg = templateErrPos(raw.tmplFile, err)
			}
			// text/template quotes a value in some errors ("range can't
			// iterate over VALUE").
			l.errs.add(pos, "for host %s (%s %s declared at %s): %s", h.Name, r.Kind, r.Name, r.Pos, l.renderErr(h, msg))
		}
		r.Spec.(ContentSpec).SetBody(out)
		return r, true
	case raw.envTmpls != nil:
		s := r.Spec.(ValuesSpec)
		vars := maps.Clone(s.Values())
		for _, k := range slices.Sorted(maps.Keys(raw.envTmpls)) {
			out, err := l.render(raw.envTmpls[k], data)
			if err != nil {
				_, msg := templateErrPos(k, err)
				if _, bmsg, ok := budgetErrPos(raw.envTmpls[k], k, err); ok {
					msg = bmsg
				}
				l.errs.add(r.Pos, "for host %s (%s %s): vars: the value of %s: %s", h.Name, r.Kind, r.Name, k, l.renderErr(h, msg))
			}
			// The message never quotes the value, which may be secret.
			if strings.ContainsAny(out, "\n\r\x00") {
				l.errs.add(r.Pos, "for host %s (%s %s): vars: the value of %s, rendered, holds a newline or NUL, which a KEY=VALUE file cannot carry", h.Name, r.Kind, r.Name, k)
			}
			vars[k] = out
		}
		s.SetValues(vars)
		return r, true
	}
	return r, false
}

// renderErr is how the error of a template rendered for h, or of a
// rendered check field, is shown: with h's decrypted values hidden (text/
// template quotes what it fails to range over; an address check quotes the
// address). In an unmerged revision on a host with decrypted values it is
// not shown at all, since its author can transform a value past the
// redactor ("range can't iterate over" a value printed in hex).
func (l *loader) renderErr(h *Host, msg string) string {
	if l.opts.Untrusted && len(h.SecretValues) > 0 {
		return "failed (the message is hidden: the revision is not merged and the host has decrypted values)"
	}
	return redact.New(h.SecretValues...).String(msg)
}

// markSecrets completes, once every resource of the host is rendered,
// what is secret: the values of an env marked secret join the host's
// SecretValues (which the redactor hides in check output), then a rendered
// file or env holding one of those values is secret. In an unmerged
// revision every rendered resource of a host with secret values is, since
// its author can transform a value past the check for the values
// themselves.
func (l *loader) markSecrets(h *Host, rendered map[int]bool) {
	for _, r := range h.Resources {
		if s, ok := r.Spec.(ValuesSpec); ok && s.IsSecret() {
			for _, v := range s.Values() {
				h.SecretValues = append(h.SecretValues, v)
			}
		}
	}
	sort.Strings(h.SecretValues)
	h.SecretValues = compactStrings(h.SecretValues)
	secret := func(out string) bool {
		return containsAny(out, h.SecretValues) || (l.opts.Untrusted && len(h.SecretValues) > 0)
	}
	for i, r := range h.Resources {
		if !rendered[i] {
			continue
		}
		switch s := r.Spec.(type) {
		case ContentSpec:
			if secret(s.Body()) {
				s.MarkSecret()
			}
		case ValuesSpec:
			if secret(strings.Join(slices.Collect(maps.Values(s.Values())), "\n")) {
				s.MarkSecret()
			}
		}
	}
}

// checkReferences finds duplicate identities on a host, and requires or
// notify entries naming a resource the host does not have.
func (l *loader) checkReferences(h *Host, raws []*rawResource) {
	ids := map[string]Position{}
	for _, raw := range raws {
		id := raw.res.ID()
		if first, dup := ids[id]; dup {
			l.errs.add(raw.res.Pos, "duplicate resource %s on host %s (first declared at %s)", id, h.Name, first)
			continue
		}
		ids[id] = raw.res.Pos
	}
	kinds := l.opts.Kinds
	for _, raw := range raws {
		check := func(what string, refs []string, pos []Position) {
			for i, ref := range refs {
				kind, name, ok := strings.Cut(ref, ":")
				switch {
				case !ok || name == "" || kinds[kind] == nil:
					l.errs.add(pos[i], "%s: %q is not a resource identity such as service:app or file:/etc/app.conf", what, ref)
				case ref == raw.res.ID():
					l.errs.add(pos[i], "%s: %s refers to itself", what, ref)
				default:
					if _, found := ids[ref]; !found {
						l.errs.add(pos[i], "%s: %s is not declared on host %s", what, ref, h.Name)
					}
				}
			}
		}
		check("requires", raw.res.Requires, raw.requiresPos)
		check("notify", raw.res.Notify, raw.notifyPos)
	}
	l.checkCycles(h, raws)
}

// checkCycles reports a requires cycle: no order could apply it.
func (l *loader) checkCycles(h *Host, raws []*rawResource) {
	byID := map[string]*rawResource{}
	for _, raw := range raws {
		if _, dup := byID[raw.res.ID()]; !dup {
			byID[raw.res.ID()] = raw
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(id string) bool
	visit = func(id string) bool {
		switch state[id] {
		case visiting:
			start := 0
			for i, s := range stack {
				if s == id {
					start = i
				}
			}
			cycle := append(append([]string(nil), stack[start:]...), id)
			l.errs.add(byID[id].res.Pos, "requires cycle on host %s: %s", h.Name, strings.Join(cycle, " -> "))
			return true
		case done:
			return false
		}
		state[id] = visiting
		stack = append(stack, id)
		for _, req := range byID[id].res.Requires {
			if byID[req] != nil && req != id && visit(req) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		return false
	}
	for _, raw := range raws {
		if state[raw.res.ID()] == unvisited {
			if visit(raw.res.ID()) {
				return
			}
		}
	}
}

// renderCheck makes the host's copy of a verify step.
func (l *loader) renderCheck(cd checkDecl, h *Host, data templateData) Check {
	c := cd.check
	c.Host = h.Name
	if l.varsUnknown[h] {
		// Left as declared: a load that does not decrypt never runs checks.
		return c
	}
	// Errors may quote the rendered value, which may hold a decrypted one.
	rendered := map[string]bool{}
	for _, t := range cd.templates {
		out, err := l.render(t.tmpl, data)
		if err != nil {
			_, msg := templateErrPos(t.field, err)
			l.errs.add(t.pos, "%s: for host %s: %s", t.field, h.Name, l.renderErr(h, msg))
			continue
		}
		t.set(&c, out)
		rendered[t.field] = true
	}
	// The rendered values get their kind's own validation; the others had
	// it once, at decode.
	for _, p := range l.checkProblems(c) {
		for _, t := range cd.templates {
			if t.field == p.Key && rendered[t.field] {
				l.errs.add(t.pos, "%s: for host %s: %s", t.field, h.Name, l.renderErr(h, strings.TrimPrefix(p.Msg, p.Key+": ")))
			}
		}
	}
	return c
}

// roleNames lists the roles visible to an environment, sorted.
func (l *loader) roleNames(decl *envDecl) []string {
	var names []string
	for n := range l.roles {
		names = append(names, n)
	}
	for n := range decl.roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
