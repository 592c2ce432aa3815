package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeScalar decodes strings, booleans and numbers.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: expected %s, got %s", what, scalarWant(v.Kind()), kindName(n))
		return
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		if n.ShortTag() != "!!bool" {
			d.errorf(n, "%s: expected true or false, got %q", what, n.Value)
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errorf(n, "%s: expected an integer, got %q", what, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64, reflect.Float32:
		var f float64
		if (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.errorf(n, "%s: expected a number, got %q", what, n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, "%s: values of type %s are not supported", what, v.Type())
	}
}

func scalarWant(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "a string"
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: expected a duration such as 30s or 5m, got %s", what, kindName(n))
		return
	}
	if isNull(n) {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, "%s: invalid duration %q (use a number and a unit, such as 30s or 5m)", what, n.Value)
		return
	}
	if dur < 0 {
		d.errorf(n, "%s: duration %q is negative", what, n.Value)
		return
	}
	v.SetInt(int64(dur))
}

// decodeSecret accepts only a reference: {file: PATH} or {env: NAME}. A
// plain string is refused so that no secret ends up committed in a file.
func (d *decoder) decodeSecret(n *yaml.Node, v reflect.Value, what string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: secrets are referenced by file or env, never inline", what)
		return
	}
	var s Secret
	before := len(d.errs.list)
	d.decodeStruct(n, reflect.ValueOf(&s).Elem(), what, nil)
	if len(d.errs.list) > before {
		return
	}
	if (s.File == "") == (s.Env == "") {
		d.errorf(n, "%s: a secret needs exactly one of file or env", what)
		return
	}
	v.Set(reflect.ValueOf(s))
}
