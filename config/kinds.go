package config

import (
	"errors"
	"sort"
	"strings"
)

// Problem is one thing wrong with a declared value, found by a kind's own
// validation: Key is the spec key holding the value ("mode", "allow"), ""
// for the resource's name (or the check as a whole); Msg says what is
// wrong, starting with the key ("mode: \"999\" is not an octal mode").
type Problem struct {
	Key string
	Msg string
}

// Problems joins problems into one error, nil when there are none.
func Problems(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Msg
	}
	return errors.New(strings.Join(msgs, "; "))
}

// ResourceKind is one row of the table of resource kinds, as the loader
// sees it. The table is not config's: the loader takes it from its caller
// (LoadOptions.Kinds), and the drivers that observe and apply the kind use
// the same Validate, so that validate and plan can never disagree.
type ResourceKind interface {
	// NewSpec returns a new, empty spec of the kind: a pointer to its
	// struct, whose yaml tags are the keys the kind accepts.
	NewSpec() any
	// Validate returns what is wrong with a resource of the kind named
	// name with spec spec (the kind's own spec type). It is given the
	// declared spec at load, and the resolved one (content read,
	// templates rendered) by the drivers.
	Validate(name string, spec any) []Problem
}

// MappingKind is a kind whose kind key holds its spec as a mapping
// (`route: {to: ..., via: ...}`) rather than its name; Name derives the
// resource's name from the decoded spec.
type MappingKind interface {
	ResourceKind
	Name(spec any) string
}

// Kinds is the table of resource kinds: kind name to its row.
type Kinds map[string]ResourceKind

// Names returns the kinds' names, sorted.
func (k Kinds) Names() []string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckKind is one row of the table of verification check kinds (http,
// tcp, command, prometheus, junit): the check's own validation, run at
// load on every value that is not a template and, for each host, on the
// values rendered from templates. The runner of the checks uses the same.
type CheckKind interface {
	Validate(c Check) []Problem
}

// CheckKinds is the table of check kinds: kind name to its row.
type CheckKinds map[string]CheckKind

// The loader knows a few things about some specs: where a file's content
// comes from, a service's unit file, an env's templated values, and which
// content is secret. It asks the spec through these interfaces, which the
// kinds' spec types implement; config names none of them.

// SecretSpec is a spec whose content may have to stay in the daemon (a
// file, an env, a service's unit). Resource.IsSecret asks it; the loader
// marks it when its content was decrypted or rendered with a decrypted
// value.
type SecretSpec interface {
	IsSecret() bool
	MarkSecret()
}

// ContentSpec is a spec whose body is given by exactly one of the keys
// content, source (a file of the repository, read and, when SOPS or age,
// decrypted by the loader) or template (a file of the repository, parsed
// once and rendered for each host). The loader hands the result to
// SetBody, so that Body is the final content.
type ContentSpec interface {
	SecretSpec
	// ContentFrom returns the declared source and template file names
	// (empty when not given).
	ContentFrom() (source, template string)
	// NeedsContent reports whether one of the keys is required (a file
	// that is not to be absent).
	NeedsContent() bool
	Body() string
	SetBody(content string)
}

// UnitSpec is a spec whose unit file is given by one of the keys unit or
// unit_source (a file of the repository, read and decrypted by the loader
// and handed to SetUnit).
type UnitSpec interface {
	SecretSpec
	// UnitFrom returns the declared unit text and unit_source file name.
	UnitFrom() (unit, source string)
	SetUnit(unit string)
}

// ValuesSpec is a spec whose values (the key vars) may be templates
// ("{{ .Vars.db_password }}"), parsed once by the loader and rendered for
// each host; the values of a secret one join the host's secret values.
type ValuesSpec interface {
	SecretSpec
	Values() map[string]string
	SetValues(values map[string]string)
}
