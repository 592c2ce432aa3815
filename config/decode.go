package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds how many YAML nodes one file may make the decoder visit.
// Aliases can make a small file expand exponentially ("billion laughs");
// past this budget the file is refused instead of eating the daemon's memory.
const maxNodes = 200000

// decoder turns YAML nodes into Go values strictly: unknown keys, wrong
// types and duplicate keys are errors with their position. It keeps going
// after an error so that every problem of a file is reported at once.
type decoder struct {
	file   string
	errs   *errs
	budget int
	// exhausted is set once the node budget ran out; decoding then stops.
	exhausted bool
}

func newDecoder(file string, e *errs) *decoder {
	return &decoder{file: file, errs: e, budget: maxNodes}
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.pos(n), format, args...)
}

// visit follows aliases and charges the node budget. It returns nil once
// the budget is exhausted, and callers stop on nil.
func (d *decoder) visit(n *yaml.Node) *yaml.Node {
	if d.exhausted || n == nil {
		return nil
	}
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > 100 {
			d.errorf(n, "alias *%s does not resolve", n.Value)
			return nil
		}
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 {
		d.exhausted = true
		d.errorf(n, "document too large: more than %d nodes once aliases are expanded", maxNodes)
		return nil
	}
	return n
}

// pair is one key and its value in a mapping.
type pair struct {
	key, val *yaml.Node
}

// pairs returns the key/value pairs of a mapping, with merge keys (<<)
// expanded after the explicit keys, which win. Duplicate keys and
// non-scalar keys are reported and dropped.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var explicit, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			merged = append(merged, d.mergePairs(v, 0)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "a key must be a plain string")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "key %q is already defined at line %d", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		explicit = append(explicit, pair{k, v})
	}
	for _, p := range merged {
		if _, dup := seen[p.key.Value]; dup {
			continue
		}
		seen[p.key.Value] = p.key
		explicit = append(explicit, p)
	}
	return explicit
}

// mergePairs returns the pairs a merge key brings in: one mapping or a
// list of mappings, earlier ones winning.
func (d *decoder) mergePairs(v *yaml.Node, depth int) []pair {
	v = d.visit(v)
	if v == nil {
		return nil
	}
	if depth > 10 {
		d.errorf(v, "merge keys nested too deeply")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			out = append(out, d.mergePairs(item, depth+1)...)
		}
		return out
	}
	d.errorf(v, "a merge key (<<) takes a mapping or a list of mappings")
	return nil
}

var (
	durationType = reflect.TypeOf(Duration(0))
	secretType   = reflect.TypeOf(Secret{})
)

// kindName describes a node's kind for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decodeValue decodes n into v, which must be settable. what names the
// value in error messages (usually its key).
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, what string) {
	n = d.visit(n)
	if n == nil {
		return
	}
	switch v.Type() {
	case durationType:
		d.decodeDuration(n, v, what)
		return
	case secretType:
		d.decodeSecret(n, v, what)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decodeValue(n, p.Elem(), what)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, what, nil)
	case reflect.Slice:
		d.decodeSlice(n, v, what)
	case reflect.Map:
		d.decodeMap(n, v, what)
	case reflect.Interface:
		var out any
		if err := n.Decode(&out); err != nil {
			d.errorf(n, "%s: %s", what, strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		if out != nil {
			v.Set(reflect.ValueOf(stringKeys(out)))
		}
	default:
		d.decodeScalar(n, v, what)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, what string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list, got %s", what, kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decodeValue(item, out.Index(i), fmt.Sprintf("%s[%d]", what, i))
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, what string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: expected a mapping, got %s", what, kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, "%s: maps keyed by %s are not supported", what, v.Type().Key())
		return
	}
	out := reflect.MakeMap(v.Type())
	for _, p := range d.pairs(n) {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decodeValue(p.val, elem, what+"."+p.key.Value)
		out.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(out)
}

// yamlFields maps the YAML keys of a struct type to field indexes.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	sort.Strings(names)
	return fields, names
}

// handler decodes a key that a struct does not decode by reflection.
type handler func(key, val *yaml.Node)

// decodeStruct decodes a mapping into the struct v by its yaml tags. Keys
// in special are handed to their handler instead. It returns the value node
// of every key seen, so callers can point later errors at the right line.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, what string, special map[string]handler) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n = d.visit(n); n == nil {
		return seen
	}
	if n.Kind != yaml.MappingNode {
		if !isNull(n) {
			d.errorf(n, "%s: expected a mapping, got %s", what, kindName(n))
		}
		return seen
	}
	fields, names := yamlFields(v.Type())
	for _, p := range d.pairs(n) {
		key := p.key.Value
		seen[key] = p.val
		if h, ok := special[key]; ok {
			h(p.key, p.val)
			continue
		}
		i, ok := fields[key]
		if !ok {
			valid := validKeys(names, special)
			if s := suggest(key, valid); s != "" {
				d.errorf(p.key, "unknown key %q in %s; did you mean %q?", key, what, s)
			} else {
				d.errorf(p.key, "unknown key %q in %s (valid keys: %s)", key, what, strings.Join(valid, ", "))
			}
			continue
		}
		d.decodeValue(p.val, v.Field(i), key)
	}
	return seen
}

func validKeys(names []string, special map[string]handler) []string {
	out := append([]string(nil), names...)
	for k := range special {
		if !contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
