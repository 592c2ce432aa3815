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
