package config

import (
	"maps"
	"path"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// at returns the position of a key's value, or of the resource itself.
func (d *decoder) at(r *rawResource, key string) *yaml.Node {
	if n, ok := r.keys[key]; ok {
		return n
	}
	return &yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}
}

// checkResource validates what can be checked without knowing the host:
// the kind's own validation (its row of the table: the name, paths, modes,
// states, required fields), each problem at its key's value, then what
// only the loader knows: the drift mode and where the content comes from.
// It reads source files and parses templates, once for every host.
func (l *loader) checkResource(d *decoder, r *rawResource, kind ResourceKind) {
	res := &r.res
	if res.Drift != DriftInherit && !validDrift(res.Drift) {
		d.errorf(d.at(r, "drift"), "drift: %q is not one of enforce, warn, ignore", res.Drift)
	}
	for _, p := range kind.Validate(res.Name, res.Spec) {
		d.errorf(d.at(r, p.Key), "%s", p.Msg)
	}
	switch s := res.Spec.(type) {
	case ContentSpec:
		l.checkFileContent(d, r, s)
	case ValuesSpec:
		l.checkEnvTemplates(d, r, s)
	case UnitSpec:
		l.checkUnit(d, r, s)
	}
}

func validDrift(m DriftMode) bool {
	return m == DriftEnforce || m == DriftWarn || m == DriftIgnore
}

// checkFileContent enforces one source of content and loads it: a source
// file is read, a template is parsed (it is rendered per host later).
func (l *loader) checkFileContent(d *decoder, r *rawResource, s ContentSpec) {
	given := 0
	for _, k := range []string{"content", "source", "template"} {
		if _, ok := r.keys[k]; ok {
			given++
		}
	}
	switch {
	case given > 1:
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a %s takes only one of content, source or template", r.res.Kind)
		return
	case given == 0 && s.NeedsContent():
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a %s needs one of content, source or template (or state: absent)", r.res.Kind)
		return
	}
	source, tmpl := s.ContentFrom()
	if source != "" {
		if data, encrypted, ok := l.readSecretFile(d, d.at(r, "source"), "source", source); ok {
			s.SetBody(string(data))
			if encrypted {
				s.MarkSecret()
			}
			r.res.Undecrypted = encrypted && data == nil
		}
	}
	if tmpl != "" {
		data, encrypted, ok := l.readSecretFile(d, d.at(r, "template"), "template", tmpl)
		if !ok {
			return
		}
		if encrypted {
			s.MarkSecret()
		}
		if encrypted && data == nil {
			r.res.Undecrypted = true
			return
		}
		name := path.Clean(tmpl)
		t, err := parseTemplate(name, string(data))
		if err != nil {
			pos, msg := templateErrPos(name, err)
			l.errs.add(pos, "template: %s", msg)
			return
		}
		r.tmpl, r.tmplFile = t, name
	}
}

// checkUnit loads a service's unit file from unit_source; a SOPS or age
// file is decrypted and makes the unit secret.
func (l *loader) checkUnit(d *decoder, r *rawResource, s UnitSpec) {
	unit, source := s.UnitFrom()
	if unit != "" && source != "" {
		d.errorf(d.at(r, "unit_source"), "a %s takes only one of unit or unit_source", r.res.Kind)
		return
	}
	if source != "" {
		if data, encrypted, ok := l.readSecretFile(d, d.at(r, "unit_source"), "unit_source", source); ok {
			s.SetUnit(string(data))
			if encrypted {
				s.MarkSecret()
			}
			r.res.Undecrypted = encrypted && data == nil
		}
	}
}

// checkEnvTemplates parses the values (an env's vars) that are templates, once; they
// are rendered for each host when the resource is instantiated.
func (l *loader) checkEnvTemplates(d *decoder, r *rawResource, s ValuesSpec) {
	vars := s.Values()
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v := vars[k]
		if !strings.Contains(v, "{{") {
			continue
		}
		t, err := parseTemplate(k, v)
		if err != nil {
			_, msg := templateErrPos(k, err)
			d.errorf(d.at(r, "vars"), "vars: the value of %s is not a valid template: %s", k, msg)
			continue
		}
		if r.envTmpls == nil {
			r.envTmpls = map[string]*template.Template{}
		}
		r.envTmpls[k] = t
	}
}
