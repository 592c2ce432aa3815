package config_test

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

const docFile = "../docs/configuration.md"

// schemaProperties collects every property name anywhere in the schema.
func schemaProperties(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if props, ok := x["properties"].(map[string]any); ok {
			for name := range props {
				into[name] = true
			}
		}
		for _, child := range x {
			schemaProperties(child, into)
		}
	case []any:
		for _, child := range x {
			schemaProperties(child, into)
		}
	}
}

// daemonKeys collects every YAML key of the daemon configuration's types.
func daemonKeys(t reflect.Type, into map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		into[name] = true
		daemonKeys(t.Field(i).Type, into)
	}
}

// TestDocsCoverEveryKey checks that docs/configuration.md mentions, as
// `key`, every property of the environment schema and every key of
// driftless.yaml, so the reference cannot fall behind the code.
func TestDocsCoverEveryKey(t *testing.T) {
	data, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	keys := map[string]bool{}
	schemaProperties(loadSchemaDoc(t), keys)
	daemonKeys(reflect.TypeOf(config.Daemon{}), keys)
	if len(keys) < 100 {
		t.Fatalf("found only %d keys; the walk is wrong", len(keys))
	}
	var missing []string
	for k := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not document: %s", docFile, strings.Join(missing, ", "))
	}
}
