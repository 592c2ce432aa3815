package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses one file holding exactly one YAML document and returns
// its root node. Syntax errors are reported with their line.
func parseYAML(file string, data []byte, e *errs) (root *yaml.Node) {
	// The YAML parser works on outside input; should it ever panic on a
	// malformed file, that file is reported as invalid instead of taking
	// the daemon down.
	defer func() {
		if r := recover(); r != nil {
			e.add(Position{File: file, Line: 1, Column: 1}, "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			e.add(Position{File: file, Line: 1, Column: 1}, "the file is empty")
			return nil
		}
		addYAMLError(file, err, e)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		e.add(Position{File: file, Line: max(next.Line, 1), Column: max(next.Column, 1)}, "a file holds one YAML document, found a second one")
		return nil
	case !errors.Is(err, io.EOF):
		addYAMLError(file, err, e)
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	e.add(Position{File: file, Line: 1, Column: 1}, "the file is empty")
	return nil
}

func addYAMLError(file string, err error, e *errs) {
	msg := err.Error()
	line := 1
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		if l, convErr := strconv.Atoi(m[1]); convErr == nil && l > 0 {
			line = l
		}
		msg = m[2]
	}
	e.add(Position{File: file, Line: line, Column: 1}, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// stringKeys turns the map[any]any that YAML gives for mappings with
// non-string keys into map[string]any, so that variables always print as
// JSON and index the same way in templates.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[fmt.Sprint(k)] = stringKeys(val)
		}
		return out
	case map[string]any:
		for k, val := range x {
			x[k] = stringKeys(val)
		}
		return x
	case []any:
		for i, val := range x {
			x[i] = stringKeys(val)
		}
		return x
	}
	return v
}
