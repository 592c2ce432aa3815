package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

const schemaFile = "schema/environment.schema.json"

// loadSchemaDoc reads the schema as plain JSON, for walking it.
func loadSchemaDoc(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	return doc
}

// yamlKeys lists the YAML keys of a struct type, as the loader reads them.
func yamlKeys(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func properties(t *testing.T, doc map[string]any, path ...string) map[string]any {
	t.Helper()
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("schema has no %s", strings.Join(path, "/"))
		}
		cur = m[p]
	}
	props, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("schema has no object at %s", strings.Join(path, "/"))
	}
	return props
}

// TestSchemaCoversEveryField checks, by reflection over the Go types, that
// every kind of the kinds table (targets.Kinds) and every field the loader accepts is in the
// schema, so the schema cannot silently fall behind the code.
func TestSchemaCoversEveryField(t *testing.T) {
	doc := loadSchemaDoc(t)
	defs := properties(t, doc, "$defs")
	var kinds []string
	for kind, row := range targets.Kinds() {
		kinds = append(kinds, kind)
		def, ok := defs["kind_"+kind].(map[string]any)
		if !ok {
			t.Errorf("kind %s: no $defs/kind_%s", kind, kind)
			continue
		}
		props := properties(t, def, "properties")
		want := append(yamlKeys(reflect.ValueOf(row.NewSpec()).Elem().Interface()), kind, "requires", "notify", "drift")
		for _, key := range want {
			if _, ok := props[key]; !ok {
				t.Errorf("kind %s: field %s missing from the schema", kind, key)
			}
		}
	}
	sort.Strings(kinds)
	var refs []string
	for _, alt := range properties(t, doc, "$defs", "resource")["oneOf"].([]any) {
		refs = append(refs, strings.TrimPrefix(alt.(map[string]any)["$ref"].(string), "#/$defs/kind_"))
	}
	sort.Strings(refs)
	if !reflect.DeepEqual(refs, kinds) {
		t.Errorf("resource oneOf lists %v, targets.Kinds has %v", refs, kinds)
	}
	for _, tc := range []struct {
		typ  any
		path []string
	}{
		{config.Environment{}, []string{"properties"}},
		{config.Host{}, []string{"$defs", "host", "properties"}},
		{config.Rollout{}, []string{"properties", "rollout", "properties"}},
		{config.Check{}, []string{"$defs", "check", "properties"}},
	} {
		props := properties(t, doc, tc.path...)
		for _, key := range yamlKeys(tc.typ) {
			if _, ok := props[key]; !ok {
				t.Errorf("%T: field %s missing from the schema at %s", tc.typ, key, strings.Join(tc.path, "/"))
			}
		}
	}
}

func compileSchema(t *testing.T) (env, role *jsonschema.Schema) {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	id := doc.(map[string]any)["$id"].(string)
	c := jsonschema.NewCompiler()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	if env, err = c.Compile(id); err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	if role, err = c.Compile(id + "#/$defs/roleFile"); err != nil {
		t.Fatalf("compile role schema: %v", err)
	}
	return env, role
}

// yamlInstance converts a YAML document to the JSON value the schema checks.
func yamlInstance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaAcceptsGoodFixtures validates every good fixture and the
// quickstart example against the schema.
func TestSchemaAcceptsGoodFixtures(t *testing.T) {
	env, role := compileSchema(t)
	checked := 0
	for _, pattern := range []string{"testdata/good/*/*/*.y*ml", "../examples/*/*/*.y*ml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			sch := env
			if filepath.Base(filepath.Dir(file)) == "roles" {
				sch = role
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(yamlInstance(t, data)); err != nil {
				t.Errorf("%s: %v", file, err)
			}
			checked++
		}
	}
	if checked < 8 {
		t.Fatalf("validated only %d files; the fixture globs are wrong", checked)
	}
}

// TestSchemaRejects checks the schema is not vacuous: documents the loader
// refuses are refused by the schema too.
func TestSchemaRejects(t *testing.T) {
	env, _ := compileSchema(t)
	for name, doc := range map[string]string{
		"unknown top key":     "environment: e\nowner: x\n",
		"no name":             "hosts: []\n",
		"unknown kind":        "environment: e\nhosts: [{name: h, resources: [{cronjob: x}]}]\n",
		"unknown file key":    "environment: e\nhosts: [{name: h, resources: [{file: /a, colour: red}]}]\n",
		"relative path":       "environment: e\nhosts: [{name: h, resources: [{file: a, content: x}]}]\n",
		"bad mode":            "environment: e\nhosts: [{name: h, resources: [{file: /a, content: x, mode: rw}]}]\n",
		"two check kinds":     "environment: e\nverify: [{http: x, tcp: y}]\n",
		"negative batch":      "environment: e\nrollout: {batch: -1}\n",
		"bad drift":           "environment: e\ndrift: auto\n",
		"route without to":    "environment: e\nhosts: [{name: h, resources: [{route: {via: 10.0.0.1}}]}]\n",
		"bad firewall rule":   "environment: e\nhosts: [{name: h, resources: [{firewall: {allow: [tcp/http]}}]}]\n",
		"artifact no sha256":  "environment: e\nhosts: [{name: h, resources: [{artifact: /opt/a, url: https://x/a.tgz}]}]\n",
		"host port too large": "environment: e\nhosts: [{name: h, port: 70000}]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := env.Validate(yamlInstance(t, []byte(doc))); err == nil {
				t.Errorf("schema accepts %q", doc)
			}
		})
	}
}

// jsonable turns YAML's map[any]any (mappings with non-string keys) into
// map[string]any, as JSON has only string keys.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[fmt.Sprint(k)] = jsonable(val)
		}
		return out
	case map[string]any:
		for k, val := range x {
			x[k] = jsonable(val)
		}
	case []any:
		for i, val := range x {
			x[i] = jsonable(val)
		}
	}
	return v
}
