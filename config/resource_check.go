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
	case *FileSpec:
		l.checkFileContent(d, r, s)
	case *EnvSpec:
		l.checkEnvTemplates(d, r, s)
	case *ServiceSpec:
		l.checkUnit(d, r, s)
	}
}

func validDrift(m DriftMode) bool {
	return m == DriftEnforce || m == DriftWarn || m == DriftIgnore
}

// checkFileContent enforces one source of content and loads it: a source
// file is read, a template is parsed (it is rendered per host later).
func (l *loader) checkFileContent(d *decoder, r *rawResource, s *FileSpec) {
	given := 0
	for _, k := range []string{"content", "source", "template"} {
		if _, ok := r.keys[k]; ok {
			given++
		}
	}
	switch {
	case given > 1:
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a file takes only one of content, source or template")
		return
	case given == 0 && s.State != Absent:
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a file needs one of content, source or template (or state: absent)")
		return
	}
	if s.Source != "" {
		if data, encrypted, ok := l.readSecretFile(d, d.at(r, "source"), "source", s.Source); ok {
			s.Content = string(data)
			s.Secret = s.Secret || encrypted
			r.res.Undecrypted = encrypted && data == nil
		}
	}
	if s.Template != "" {
		data, encrypted, ok := l.readSecretFile(d, d.at(r, "template"), "template", s.Template)
		if !ok {
			return
		}
		s.Secret = s.Secret || encrypted
		if encrypted && data == nil {
			r.res.Undecrypted = true
			return
		}
		name := path.Clean(s.Template)
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
func (l *loader) checkUnit(d *decoder, r *rawResource, s *ServiceSpec) {
	if s.Unit != "" && s.UnitSource != "" {
		d.errorf(d.at(r, "unit_source"), "a service takes only one of unit or unit_source")
		return
	}
	if s.UnitSource != "" {
		if data, encrypted, ok := l.readSecretFile(d, d.at(r, "unit_source"), "unit_source", s.UnitSource); ok {
			s.Unit = string(data)
			s.Secret = s.Secret || encrypted
			r.res.Undecrypted = encrypted && data == nil
		}
	}
}

// checkEnvTemplates parses the env values that are templates, once; they
// are rendered for each host when the resource is instantiated.
func (l *loader) checkEnvTemplates(d *decoder, r *rawResource, s *EnvSpec) {
	for _, k := range slices.Sorted(maps.Keys(s.Vars)) {
		v := s.Vars[k]
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
