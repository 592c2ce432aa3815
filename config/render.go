package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// maxRepoFile bounds a file a resource reads from the repository; the
// daemon keeps every revision's contents in memory.
const maxRepoFile = 32 << 20

// readRepoFile reads a file a resource refers to (source:, template:,
// unit_source:). It must be relative to the repository, must not climb out
// of it with "..", and must not be a symlink that leads out of it: a
// repository must never make the daemon read files of its own machine.
func (l *loader) readRepoFile(d *decoder, at *yaml.Node, key, rel string) ([]byte, bool) {
	fail := func(format string, args ...any) ([]byte, bool) {
		d.errorf(at, "%s: %q "+format, append([]any{key, rel}, args...)...)
		return nil, false
	}
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
		return fail("must be a path relative to the repository")
	}
	clean := filepath.Clean(filepath.FromSlash(rel))
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return fail("leads outside the repository")
	}
	if data, ok := l.files[clean]; ok {
		return data, true
	}
	resolved, err := filepath.EvalSymlinks(filepath.Join(l.dir, clean))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail("does not exist in the repository")
		}
		return fail("cannot be read")
	}
	inside, err := filepath.Rel(l.root, resolved)
	if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
		return fail("is a symlink leading outside the repository")
	}
	st, err := os.Stat(resolved)
	if err != nil || !st.Mode().IsRegular() {
		return fail("is not a regular file")
	}
	if st.Size() > maxRepoFile {
		return fail("is larger than %d MiB", maxRepoFile>>20)
	}
	data, err := os.ReadFile(resolved)
	if err != nil {
		return fail("cannot be read")
	}
	l.files[clean] = data
	return data, true
}

var templateErrRe = regexp.MustCompile(`^template: (.*?):(\d+):(?:(\d+):)? (?:executing "[^"]*" )?(.*)$`)

// templateErrPos turns a text/template error into a position inside the
// template file (relative to the repository) and a short message.
func templateErrPos(file string, err error) (Position, string) {
	pos := Position{File: file, Line: 1, Column: 1}
	msg := err.Error()
	if m := templateErrRe.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[2]); convErr == nil && n > 0 {
			pos.Line = n
		}
		if n, convErr := strconv.Atoi(m[3]); convErr == nil && n > 0 {
			pos.Column = n
		}
		msg = m[4]
	}
	return pos, msg
}

// templateHost is what templates see as .Host.
type templateHost struct {
	Name    string
	Address string
	Labels  map[string]string
	Vars    map[string]any
}

// templateData is the data every template is rendered with.
type templateData struct {
	Host        templateHost
	Vars        map[string]any
	Environment string
}

func newTemplateData(env *Environment, h *Host) templateData {
	vars := h.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	labels := h.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return templateData{
		Host:        templateHost{Name: h.Name, Address: h.Address, Labels: labels, Vars: vars},
		Vars:        vars,
		Environment: env.Name,
	}
}

// checkTemplate is one string field of a verify check, parsed once and
// rendered for each host.
type checkTemplate struct {
	field string
	set   func(c *Check, s string)
	tmpl  *template.Template
	pos   Position
}

// checkFields lists the string fields of a check that are templates.
var checkFields = []struct {
	key string
	get func(c *Check) string
	set func(c *Check, s string)
}{
	{"name", func(c *Check) string { return c.Name }, func(c *Check, s string) { c.Name = s }},
	{"http", func(c *Check) string { return c.HTTP }, func(c *Check, s string) { c.HTTP = s }},
	{"tcp", func(c *Check) string { return c.TCP }, func(c *Check, s string) { c.TCP = s }},
	{"command", func(c *Check) string { return c.Command }, func(c *Check, s string) { c.Command = s }},
	{"prometheus", func(c *Check) string { return c.Prometheus }, func(c *Check, s string) { c.Prometheus = s }},
	{"junit", func(c *Check) string { return c.JUnit }, func(c *Check, s string) { c.JUnit = s }},
	{"report", func(c *Check) string { return c.Report }, func(c *Check, s string) { c.Report = s }},
	{"expect_body", func(c *Check) string { return c.ExpectBody }, func(c *Check, s string) { c.ExpectBody = s }},
	{"server", func(c *Check) string { return c.Server }, func(c *Check, s string) { c.Server = s }},
}

// parseCheckTemplates parses the template fields of a check. A field
// without "{{" is left as it is and costs nothing per host.
func parseCheckTemplates(d *decoder, c *Check, nodes map[string]*yaml.Node) []checkTemplate {
	var out []checkTemplate
	for _, f := range checkFields {
		s := f.get(c)
		if !strings.Contains(s, "{{") {
			continue
		}
		n := nodes[f.key]
		t, err := parseTemplate(f.key, s)
		if err != nil {
			_, msg := templateErrPos(f.key, err)
			d.errorf(n, "%s: invalid template: %s", f.key, msg)
			continue
		}
		out = append(out, checkTemplate{field: f.key, set: f.set, tmpl: t, pos: d.pos(n)})
	}
	return out
}
