package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Promote says that an environment takes its revisions from upstream
// environments: a commit reaches it only once every upstream applied it,
// verified it and kept it good for Soak.
type Promote struct {
	// From names the upstream environments; they must all be on the same
	// commit of the same repository.
	From []string `yaml:"from" json:"from"`
	// Soak is how long every upstream must keep the commit good (applied,
	// no rollback, drift loop clean) before it is promoted.
	Soak Duration `yaml:"soak" json:"soak,omitempty"`
	// FromPos is where each upstream is named, for errors.
	FromPos []Position `yaml:"-" json:"-"`
	Pos     Position   `yaml:"-" json:"-"`
}

// Approval says that a revision waits for a person's approval before it
// is applied.
type Approval struct {
	Required bool `yaml:"required" json:"required"`
	// Approvers are the Git host logins whose pull request comment
	// `/driftless approve ENV` counts (empty: nobody's comment counts;
	// the API's approve scope always does).
	Approvers []string `yaml:"approvers" json:"approvers,omitempty"`
	Pos       Position `yaml:"-" json:"-"`
}

// Gated reports whether anything may hold a revision back from the
// environment: promotion, approval or deploy windows.
func (e *Environment) Gated() bool {
	return e.Promote != nil || (e.Approval != nil && e.Approval.Required) || len(e.Windows) > 0
}

// decodePromote decodes `promote: {from: NAME | [NAMES], soak: DURATION}`.
func decodePromote(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	p := &Promote{Pos: d.pos(n)}
	keys := d.decodeStruct(n, reflect.ValueOf(p).Elem(), "promote", map[string]handler{
		"from": func(k, v *yaml.Node) {
			if v = d.visit(v); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
				p.From, p.FromPos = []string{v.Value}, []Position{d.pos(v)}
				return
			}
			p.From, p.FromPos = d.stringList(v, "promote.from")
		},
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if len(p.From) == 0 {
		d.errorf(n, "promote: from names no upstream environment")
	}
	seen := map[string]bool{}
	for i, name := range p.From {
		switch {
		case !nameRe.MatchString(name):
			d.errs.add(p.FromPos[i], "promote.from: %q is not a valid environment name", name)
		case seen[name]:
			d.errs.add(p.FromPos[i], "promote.from: %q is named twice", name)
		}
		seen[name] = true
	}
	if p.Soak < 0 {
		d.errorf(keys["soak"], "promote.soak: must not be negative")
	}
	env.Promote = p
}

// decodeApproval decodes `approval: {required: BOOL, approvers: [LOGINS]}`.
func decodeApproval(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	a := &Approval{Pos: d.pos(n)}
	keys := d.decodeStruct(n, reflect.ValueOf(a).Elem(), "approval", nil)
	if n.Kind != yaml.MappingNode {
		return
	}
	for _, login := range a.Approvers {
		if strings.TrimSpace(login) == "" || strings.ContainsAny(login, " \t\n@/") {
			d.errorf(keys["approvers"], "approval.approvers: %q is not a Git host login", login)
		}
	}
	if len(a.Approvers) > 0 && !a.Required {
		d.errorf(keys["approvers"], "approval.approvers: approvers are listed but approval is not required (required: true)")
	}
	env.Approval = a
}

// PromotionErrors checks the promotion graph of envs (one revision's, or
// every loaded source's together): an environment that promotes from
// itself, directly or through others, is an error at its promote key.
// Upstreams that envs do not declare are not errors here (another source
// may declare them); Unknown lists them.
func PromotionErrors(envs []*Environment) ErrorList {
	byName := map[string]*Environment{}
	for _, e := range envs {
		byName[e.Name] = e
	}
	var out ErrorList
	const (
		unseen = iota
		active
		done
	)
	mark := map[string]int{}
	var visit func(e *Environment, path []string)
	visit = func(e *Environment, path []string) {
		mark[e.Name] = active
		path = append(path, e.Name)
		if e.Promote != nil {
			for i, up := range e.Promote.From {
				u, ok := byName[up]
				if !ok || indexOf(e.Promote.From, up) != i {
					continue // unknown here, or named twice (reported by the decoder)
				}
				switch mark[up] {
				case active:
					cycle := append([]string(nil), path[indexOf(path, up):]...)
					cycle = append(cycle, up)
					out = append(out, Error{Pos: e.Promote.FromPos[i], Msg: fmt.Sprintf(
						"promote.from: promotion cycle %s", strings.Join(cycle, " -> "))})
				case unseen:
					visit(u, path)
				}
			}
		}
		mark[e.Name] = done
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if mark[n] == unseen {
			visit(byName[n], nil)
		}
	}
	return out
}

// UnknownUpstreams returns an error for every upstream that envs name in
// promote.from and do not declare.
func UnknownUpstreams(envs []*Environment) ErrorList {
	known := map[string]bool{}
	for _, e := range envs {
		known[e.Name] = true
	}
	var out ErrorList
	for _, e := range envs {
		if e.Promote == nil {
			continue
		}
		for i, up := range e.Promote.From {
			if !known[up] {
				out = append(out, Error{Pos: e.Promote.FromPos[i], Msg: fmt.Sprintf(
					"promote.from: environment %q is declared by no loaded source", up)})
			}
		}
	}
	return out
}

// indexOf returns the first index of s in list (-1 when absent).
func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
