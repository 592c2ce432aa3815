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
		addYAMLError(file, data, err, e)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		e.add(Position{File: file, Line: max(next.Line, 1), Column: max(next.Column, 1)}, "a file holds one YAML document, found a second one")
		return nil
	case !errors.Is(err, io.EOF):
		addYAMLError(file, data, err, e)
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	e.add(Position{File: file, Line: 1, Column: 1}, "the file is empty")
	return nil
}

func addYAMLError(file string, data []byte, err error, e *errs) {
	msg := err.Error()
	line := 1
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		if l, convErr := strconv.Atoi(m[1]); convErr == nil && l > 0 {
			line = l
		}
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.Split(string(data), "\n")
	// A tab in an indentation is the cause whatever the parser says.
	if l, col, ok := indentTab(lines); ok {
		e.add(Position{File: file, Line: l, Column: col}, "invalid YAML: a tab character in the indentation (YAML indents with spaces only)")
		return
	}
	// The parser names the line where the block it was reading began: the
	// line at fault is the first one after it indented to no open level.
	if l, col, ok := badIndent(lines, line); ok {
		e.add(Position{File: file, Line: l, Column: col}, "invalid YAML: bad indentation: this line lines up with no enclosing block (%s)", msg)
		return
	}
	e.add(Position{File: file, Line: line, Column: 1}, "invalid YAML: %s", msg)
}

// indentTab finds the first tab in the leading whitespace of a line.
func indentTab(lines []string) (line, col int, ok bool) {
	for i, text := range lines {
		lead := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		if j := strings.IndexByte(lead, '\t'); j >= 0 {
			return i + 1, j + 1, true
		}
	}
	return 0, 0, false
}

// badIndent finds, from line from on, the first line that dedents to a
// column no enclosing block starts at. Blank lines, comments and the
// content of block scalars (| and >) are skipped.
func badIndent(lines []string, from int) (line, col int, ok bool) {
	levels := []int{0}
	scalar := -1 // indentation of the key holding a block scalar, or -1
	prev := 0
	for i, text := range lines {
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		ind := len(text) - len(trimmed)
		if scalar >= 0 && ind > scalar {
			continue
		}
		scalar = -1
		for len(levels) > 1 && levels[len(levels)-1] > ind {
			levels = levels[:len(levels)-1]
		}
		top := levels[len(levels)-1]
		if top != ind {
			if ind < prev && i+1 >= from {
				return i + 1, ind + 1, true
			}
			levels = append(levels, ind)
		}
		// A sequence item's content starts after its dash.
		if rest, isItem := strings.CutPrefix(trimmed, "- "); isItem {
			levels = append(levels, ind+2+len(rest)-len(strings.TrimLeft(rest, " ")))
		}
		value := strings.TrimSpace(trimmed)
		if k := strings.Index(value, " #"); k >= 0 {
			value = strings.TrimSpace(value[:k])
		}
		if strings.HasSuffix(value, "|") || strings.HasSuffix(value, ">") || strings.HasSuffix(value, "|-") || strings.HasSuffix(value, ">-") || strings.HasSuffix(value, "|+") || strings.HasSuffix(value, ">+") {
			scalar = ind
		}
		prev = ind
	}
	return 0, 0, false
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
