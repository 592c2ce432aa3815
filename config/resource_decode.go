package config

import (
	"reflect"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// sharedKeys are the keys every resource kind accepts besides its spec.
var sharedKeys = []string{"drift", "notify", "requires"}

// rawResource is a resource as declared, decoded and checked once,
// before it is instantiated for each host that uses it.
type rawResource struct {
	res Resource
	// keys holds the value node of every key given, for later positions.
	keys map[string]*yaml.Node
	// tmpl is the parsed template of a file resource declared with template:.
	tmpl     *template.Template
	tmplFile string
	// envTmpls are the parsed templates of an env resource's values that
	// hold "{{", by variable name.
	envTmpls map[string]*template.Template
	// refPos holds the position of each entry of Requires, then of Notify.
	requiresPos, notifyPos []Position
}

// decodeResource decodes one item of a resource list. It returns nil when
// the item is too broken to be used; its errors are already recorded.
func (l *loader) decodeResource(d *decoder, n *yaml.Node) *rawResource {
	if n = d.visit(n); n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "a resource is a mapping whose first key is its kind, got %s", kindName(n))
		return nil
	}
	ps := d.pairs(n)
	if len(ps) == 0 {
		d.errorf(n, "a resource is a mapping whose first key is its kind, got an empty mapping")
		return nil
	}
	kindKey := ps[0].key
	kind := kindKey.Value
	kinds := l.opts.Kinds
	row, ok := kinds[kind]
	if !ok {
		for _, p := range ps[1:] {
			if kinds[p.key.Value] != nil {
				d.errorf(kindKey, "the first key of a resource is its kind: found %q before %q, put %q first", kind, p.key.Value, p.key.Value)
				return nil
			}
		}
		if s := suggest(kind, kinds.Names()); s != "" {
			d.errorf(kindKey, "unknown resource kind %q; did you mean %q?", kind, s)
			return nil
		}
		d.errorf(kindKey, "unknown resource kind %q (kinds: %s)", kind, strings.Join(kinds.Names(), ", "))
		return nil
	}
	spec := row.NewSpec()
	sv := reflect.ValueOf(spec).Elem()
	fields, names := yamlFields(sv.Type())
	r := &rawResource{
		res:  Resource{Kind: kind, Spec: spec, Pos: d.pos(kindKey)},
		keys: map[string]*yaml.Node{},
	}
	mapping, isMapping := row.(MappingKind)
	if isMapping {
		for k, v := range d.decodeStruct(ps[0].val, sv, "a "+kind, nil) {
			r.keys[k] = v
		}
		if val := d.visit(ps[0].val); val != nil && val.Kind != yaml.MappingNode {
			// decodeStruct ignores null; a mapping kind needs its mapping.
			if isNull(val) {
				d.errorf(val, "%s: expected a mapping, got nothing", kind)
			}
		}
	} else {
		val := d.visit(ps[0].val)
		if val == nil {
			return nil
		}
		if val.Kind != yaml.ScalarNode || isNull(val) {
			d.errorf(val, "%s: the resource name must be a string, got %s", kind, nodeDesc(val))
			return nil
		}
		if strings.TrimSpace(val.Value) == "" {
			d.errorf(val, "%s: the resource name is empty", kind)
			return nil
		}
		r.res.Name = val.Value
	}
	for _, p := range ps[1:] {
		key := p.key.Value
		switch key {
		case "requires":
			r.res.Requires, r.requiresPos = d.stringList(p.val, key)
			continue
		case "notify":
			r.res.Notify, r.notifyPos = d.stringList(p.val, key)
			continue
		case "drift":
			var s string
			d.decodeValue(p.val, reflect.ValueOf(&s).Elem(), key)
			r.res.Drift = DriftMode(s)
			r.keys[key] = p.val
			continue
		}
		i, ok := fields[key]
		if !ok {
			valid := append(append([]string(nil), names...), sharedKeys...)
			if s := suggest(key, valid); s != "" {
				d.errorf(p.key, "unknown key %q for a %s resource; did you mean %q?", key, kind, s)
			} else {
				d.errorf(p.key, "unknown key %q for a %s resource (valid keys: %s)", key, kind, strings.Join(valid, ", "))
			}
			continue
		}
		if prev, dup := r.keys[key]; dup {
			d.errorf(p.key, "key %q is already given in the %s mapping at line %d", key, kind, prev.Line)
			continue
		}
		r.keys[key] = p.val
		d.decodeValue(p.val, sv.Field(i), key)
	}
	if isMapping {
		r.res.Name = mapping.Name(spec)
	}
	l.checkResource(d, r, row)
	return r
}

// nodeDesc describes a node for "expected X, got Y" messages.
func nodeDesc(n *yaml.Node) string {
	if isNull(n) {
		return "nothing"
	}
	return kindName(n)
}

// stringList decodes a list of strings and the position of each entry.
func (d *decoder) stringList(n *yaml.Node, what string) ([]string, []Position) {
	if n = d.visit(n); n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list, got %s", what, kindName(n))
		return nil, nil
	}
	var out []string
	var pos []Position
	for _, item := range n.Content {
		item = d.visit(item)
		if item == nil {
			continue
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.errorf(item, "%s: expected a string, got %s", what, nodeDesc(item))
			continue
		}
		out = append(out, item.Value)
		pos = append(pos, d.pos(item))
	}
	return out, pos
}

// decodeResources decodes a list of resources (a role's or a host's).
func (l *loader) decodeResources(d *decoder, n *yaml.Node, what string) []*rawResource {
	if n = d.visit(n); n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list of resources, got %s", what, kindName(n))
		return nil
	}
	var out []*rawResource
	for _, item := range n.Content {
		if r := l.decodeResource(d, item); r != nil {
			out = append(out, r)
		}
	}
	return out
}
