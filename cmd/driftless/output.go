package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// outputFlag registers -o on a command that prints data: text for people,
// json and yaml for programs, with the field names of the HTTP API.
func outputFlag(fs *pflag.FlagSet, out *string) {
	fs.StringVarP(out, "output", "o", "text", "output format: text, json or yaml")
}

// checkOutput refuses an unknown -o before any work is done.
func checkOutput(format *string) error {
	switch *format {
	case "text", "json", "yaml":
		return nil
	case "table":
		// The name earlier versions gave the text of status and history.
		*format = "text"
		return nil
	}
	return usageError{fmt.Errorf("unknown output format %q: use text, json or yaml", *format)}
}

// printData writes v as JSON or YAML, or calls text for the text format.
// JSON keeps "->" and "<" as typed (no HTML escaping); YAML is made from
// the JSON, so both have the same field names as the API.
func printData(w io.Writer, format string, v any, text func() error) error {
	switch format {
	case "json", "yaml":
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode %s output: %w", format, err)
		}
		return printJSON(w, format, buf.Bytes())
	}
	return text()
}

// printJSON writes a JSON document (an API answer, indented and not
// HTML-escaped) as it is, or as YAML.
func printJSON(w io.Writer, format string, data []byte) error {
	if format == "json" {
		_, err := w.Write(data)
		if err == nil && !bytes.HasSuffix(data, []byte("\n")) {
			_, err = io.WriteString(w, "\n")
		}
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("decode JSON for %s output: %w", format, err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNumbers(doc)); err != nil {
		return fmt.Errorf("encode yaml output: %w", err)
	}
	return enc.Close()
}

// yamlNumbers turns json.Number into YAML numbers (not quoted strings).
func yamlNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = yamlNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = yamlNumbers(e)
		}
	}
	return v
}
