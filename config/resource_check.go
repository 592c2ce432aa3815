package config

import (
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"unicode"

	"go.yaml.in/yaml/v3"
)

var (
	modeRe    = regexp.MustCompile(`^[0-7]{3,4}$`)
	sha256Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	envKeyRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sysctlRe  = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.\-/]*$`)
	accountRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
	unitRe    = regexp.MustCompile(`^[A-Za-z0-9:_.@\-]+$`)
	pkgRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+.:_\-]*$`)
	ruleRe    = regexp.MustCompile(`^(tcp|udp)/([0-9]+)(?:-([0-9]+))?$|^(icmp|icmpv6)$`)
	fwNameRe  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// states lists the allowed values of each kind's state field.
var states = map[string][]string{
	"file":      {Present, Absent},
	"directory": {Present, Absent},
	"symlink":   {Present, Absent},
	"package":   {Present, Absent, "latest"},
	"service":   {"running", "stopped"},
	"user":      {Present, Absent},
	"group":     {Present, Absent},
	"address":   {Present, Absent},
	"route":     {Present, Absent},
}

// at returns the position of a key's value, or of the resource itself.
func (d *decoder) at(r *rawResource, key string) *yaml.Node {
	if n, ok := r.keys[key]; ok {
		return n
	}
	return &yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}
}

// checkResource validates what can be checked without knowing the host:
// the name, paths, modes, states and each kind's required fields. It also
// reads source files and parses templates, once for every host.
func (l *loader) checkResource(d *decoder, r *rawResource) {
	res := &r.res
	namePos := &yaml.Node{Line: res.Pos.Line, Column: res.Pos.Column}
	if res.Drift != DriftInherit && !validDrift(res.Drift) {
		d.errorf(d.at(r, "drift"), "drift: %q is not one of enforce, warn, ignore", res.Drift)
	}
	oneOf := func(key, val string, allowed ...string) {
		if val != "" && !contains(allowed, val) {
			d.errorf(d.at(r, key), "%s: %q is not one of %s", key, val, strings.Join(allowed, ", "))
		}
	}
	mode := func(val string) {
		if val != "" && !modeRe.MatchString(val) {
			d.errorf(d.at(r, "mode"), "mode: %q is not an octal mode such as \"0644\" (write it quoted)", val)
		}
	}
	absPath := func(pos *yaml.Node, what, p string) {
		if msg := pathProblem(p); msg != "" {
			d.errorf(pos, "%s %q %s", what, p, msg)
		}
	}
	required := func(key, val string) {
		if val == "" {
			d.errorf(namePos, "%s %s resource needs %s", article(res.Kind), res.Kind, key)
		}
	}
	switch s := res.Spec.(type) {
	case *FileSpec:
		absPath(namePos, "file path", res.Name)
		mode(s.Mode)
		oneOf("state", s.State, states["file"]...)
		l.checkFileContent(d, r, s)
	case *DirectorySpec:
		absPath(namePos, "directory path", res.Name)
		mode(s.Mode)
		oneOf("state", s.State, states["directory"]...)
	case *SymlinkSpec:
		absPath(namePos, "symlink path", res.Name)
		oneOf("state", s.State, states["symlink"]...)
		if s.State != Absent {
			required("target", s.Target)
		}
		if strings.IndexFunc(s.Target, unicode.IsControl) >= 0 {
			d.errorf(d.at(r, "target"), "target: %q holds a control character (a newline, a tab)", s.Target)
		}
	case *EnvSpec:
		absPath(namePos, "env file path", res.Name)
		mode(s.Mode)
		for k, v := range s.Vars {
			if !envKeyRe.MatchString(k) {
				d.errorf(d.at(r, "vars"), "vars: %q is not a valid variable name", k)
			}
			if strings.ContainsAny(v, "\n\r\x00") {
				d.errorf(d.at(r, "vars"), "vars: the value of %s holds a newline or NUL, which a KEY=VALUE file cannot carry", k)
			}
		}
		l.checkEnvTemplates(d, r, s)
	case *CommandSpec:
		required("run", s.Run)
		if s.Creates != "" {
			absPath(d.at(r, "creates"), "creates path", s.Creates)
		}
		if s.Dir != "" {
			absPath(d.at(r, "dir"), "dir path", s.Dir)
		}
	case *PackageSpec:
		if !pkgRe.MatchString(res.Name) {
			d.errorf(namePos, "package: %q is not a valid package name", res.Name)
		}
		oneOf("state", s.State, states["package"]...)
	case *ServiceSpec:
		if !unitRe.MatchString(res.Name) {
			d.errorf(namePos, "service: %q is not a valid unit name", res.Name)
		}
		oneOf("state", s.State, states["service"]...)
		oneOf("on_notify", s.OnNotify, "restart", "reload")
		l.checkUnit(d, r, s)
	case *ArtifactSpec:
		absPath(namePos, "artifact path", res.Name)
		required("url", s.URL)
		if s.URL != "" {
			if err := checkURL(s.URL, "http", "https"); err != nil {
				d.errorf(d.at(r, "url"), "url: %v", err)
			}
		}
		required("sha256", s.SHA256)
		if s.SHA256 != "" && !sha256Re.MatchString(s.SHA256) {
			d.errorf(d.at(r, "sha256"), "sha256: expected 64 lowercase hexadecimal digits")
		}
		oneOf("format", s.Format, "tar", "tar.gz", "tgz", "zip")
		if s.Keep < 0 {
			d.errorf(d.at(r, "keep"), "keep: must not be negative")
		}
	case *SysctlSpec:
		if !sysctlRe.MatchString(res.Name) {
			d.errorf(namePos, "sysctl: %q is not a valid kernel parameter name", res.Name)
		}
		required("value", s.Value)
	case *UserSpec:
		if !accountRe.MatchString(res.Name) {
			d.errorf(namePos, "user: %q is not a valid user name", res.Name)
		}
		if s.UID < 0 {
			d.errorf(d.at(r, "uid"), "uid: must not be negative")
		}
		if s.Home != "" {
			absPath(d.at(r, "home"), "home path", s.Home)
		}
		oneOf("state", s.State, states["user"]...)
	case *GroupSpec:
		if !accountRe.MatchString(res.Name) {
			d.errorf(namePos, "group: %q is not a valid group name", res.Name)
		}
		if s.GID < 0 {
			d.errorf(d.at(r, "gid"), "gid: must not be negative")
		}
		oneOf("state", s.State, states["group"]...)
	case *AddressSpec:
		if _, err := netip.ParsePrefix(res.Name); err != nil {
			d.errorf(namePos, "address: %q is not an address in CIDR form such as 10.0.0.5/24", res.Name)
		}
		required("interface", s.Interface)
		oneOf("state", s.State, states["address"]...)
	case *RouteSpec:
		l.checkRoute(d, r, s)
	case *FirewallSpec:
		l.checkFirewall(d, r, s)
	}
}

// pathProblem says what is wrong with a path a resource manages, or "".
func pathProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "must be absolute"
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return "holds a control character (a newline, a tab), which would forge lines in plans and logs"
	case p == "/":
		return "is the root folder, which driftless never manages"
	case path.Clean(p) != p:
		return "must be clean (no \"..\", \".\", \"//\" or trailing \"/\"), as in " + `"` + path.Clean(p) + `"`
	}
	return ""
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

// article returns "an" before a vowel, "a" otherwise.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
