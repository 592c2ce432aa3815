package targets

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/driftless/driftless/config"
)

// Kinds is the table of resource kinds as config's loader takes it: each
// driver is its kind's row, with its spec and its one validation, the
// same its query, Diff, Apply and Restore run (through specOf).
func Kinds() config.Kinds {
	ds := Drivers()
	out := make(config.Kinds, len(ds))
	for k, d := range ds {
		out[k] = d
	}
	return out
}

// The values several kinds check.
var (
	// modeRe is a declared mode: three or four octal digits.
	modeRe = regexp.MustCompile(`^[0-7]{3,4}$`)
	// accountName is what useradd and groupadd accept on Debian and
	// Fedora (32 characters at most).
	accountName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)
	// ownerRe is a declared owner or group of a file: an account name
	// or a numeric id.
	ownerRe = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10})$`)
	// ifName is a Linux interface name (IFNAMSIZ: 15 characters).
	ifName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
)

// problems collects what a kind's validation finds.
type problems []config.Problem

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, config.Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// path checks a path a resource manages (key "" for the resource's name).
func (p *problems) path(key, what, v string) {
	if msg := pathProblem(v); msg != "" {
		p.add(key, "%s %q %s", what, v, msg)
	}
}

// mode checks a declared mode.
func (p *problems) mode(v string) {
	if v != "" && !modeRe.MatchString(v) {
		p.add("mode", "mode: %q is not an octal mode such as \"0644\" (write it quoted)", v)
	}
}

// oneOf checks a value that must be one of allowed, when it is set.
func (p *problems) oneOf(key, v string, allowed ...string) {
	if v != "" && !slices.Contains(allowed, v) {
		p.add(key, "%s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
	}
}

// required checks that a kind's key is set.
func (p *problems) required(kind, key, v string) {
	if v == "" {
		p.add("", "%s %s resource needs %s", article(kind), kind, key)
	}
}

// owner checks a declared owner or group of a file or folder.
func (p *problems) owner(key, v string) {
	if v != "" && !ownerRe.MatchString(v) {
		p.add(key, "%s: %q is not a user or group name (at most 32 characters: a-z, 0-9, _, ., -) or a numeric id", key, v)
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

// article returns "an" before a vowel, "a" otherwise.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// validateAny adapts a kind's typed validation to config.ResourceKind's.
func validateAny[T any](name string, spec any, validate func(string, *T) []config.Problem) []config.Problem {
	s, ok := spec.(*T)
	if !ok || s == nil {
		var zero T
		return []config.Problem{{Msg: fmt.Sprintf("spec is %T, want %T", spec, &zero)}}
	}
	return validate(name, s)
}

// specOf returns r's spec as the kind's spec type, refused when the kind's
// validation finds anything wrong with it: a driver acts on nothing that
// `driftless validate` would refuse.
func specOf[T any](r config.Resource, validate func(string, *T) []config.Problem) (*T, error) {
	s, ok := r.Spec.(*T)
	if !ok || s == nil {
		var zero T
		return nil, fmt.Errorf("%s: spec is %T, want %T", r.ID(), r.Spec, &zero)
	}
	if err := config.Problems(validate(r.Name, s)); err != nil {
		return nil, fmt.Errorf("%s: %w", r.ID(), err)
	}
	return s, nil
}
