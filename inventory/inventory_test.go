package inventory

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ansible is the output of a dynamic inventory script as Ansible documents
// it: groups with hosts, vars and children, and _meta.hostvars.
const ansible = `{
  "_meta": {"hostvars": {
    "web-1": {"ansible_host": "10.0.0.11", "ansible_user": "deploy", "port": 8081},
    "db-1": {"ansible_host": "10.0.0.21", "ansible_port": 2222}
  }},
  "all": {"children": ["ungrouped", "prod"]},
  "prod": {"children": ["web", "db"], "vars": {"env": "prod", "port": 80}},
  "web": {"hosts": ["web-1", "web-2"], "vars": {"port": 8080}},
  "db": ["db-1"],
  "ungrouped": {"hosts": ["lonely"]}
}`

func TestParse(t *testing.T) {
	got, err := Parse([]byte(ansible))
	if err != nil {
		t.Fatal(err)
	}
	want := []config.InventoryHost{
		{Name: "db-1", Address: "10.0.0.21", Port: 2222, Roles: []string{"db", "prod"}, Vars: map[string]any{"env": "prod", "port": float64(80)}},
		{Name: "lonely", Vars: map[string]any{}},
		{Name: "web-1", Address: "10.0.0.11", User: "deploy", Roles: []string{"prod", "web"}, Vars: map[string]any{"env": "prod", "port": float64(8081)}},
		{Name: "web-2", Roles: []string{"prod", "web"}, Vars: map[string]any{"env": "prod", "port": float64(80)}},
	}
	// web-2's port: both prod (80) and web (8080) set it; the first group
	// by name wins (documented), hostvars win over every group.
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", got, want)
	}
	for _, bad := range []string{"", "[]", `{"web": 3}`, `{"_meta": []}`, `{"_meta": {"hostvars": {"h": {"ansible_port": "x"}}}}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// TestSourceRunsOnlyWhenTrusted: a trusted Source runs the command and
// keeps its result; an untrusted one reads that result and runs nothing;
// a failing run falls back to the last result.
func TestSourceRunsOnlyWhenTrusted(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "inv.json")
	if err := os.WriteFile(script, []byte(ansible), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := &config.Inventory{Command: "echo run >> " + runs + "; test \"$DRIFTLESS_ENVIRONMENT\" = prod && cat " + script}
	untrusted := &Source{Dir: filepath.Join(dir, "cache"), Logger: zerolog.Nop()}
	if _, err := untrusted.Hosts("prod", inv); err == nil || !strings.Contains(err.Error(), "no inventory result yet") {
		t.Fatalf("untrusted without a result: %v", err)
	}
	trusted := &Source{Dir: filepath.Join(dir, "cache"), Run: true, Logger: zerolog.Nop()}
	hosts, err := trusted.Hosts("prod", inv)
	if err != nil || len(hosts) != 4 {
		t.Fatalf("trusted: %d hosts, %v", len(hosts), err)
	}
	if err := os.WriteFile(script, []byte(`{"web": ["web-9"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, err = untrusted.Hosts("prod", inv)
	if err != nil || len(hosts) != 4 {
		t.Fatalf("untrusted after a trusted run: %d hosts, %v", len(hosts), err)
	}
	if b, _ := os.ReadFile(runs); string(b) != "run\n" {
		t.Fatalf("the command ran %q times, want once", b)
	}
	broken := &config.Inventory{Command: "echo boom >&2; exit 2"}
	if hosts, err = trusted.Hosts("prod", broken); err != nil || len(hosts) != 4 {
		t.Fatalf("failing run: %d hosts, %v; want the last result", len(hosts), err)
	}
	if _, err = trusted.Hosts("staging", broken); err == nil || !strings.Contains(err.Error(), "exited 2: boom") {
		t.Fatalf("failing run without a last result: %v", err)
	}
}

func TestSourceURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/inventory" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(ansible))
	}))
	defer srv.Close()
	s := &Source{Dir: t.TempDir(), Run: true, Logger: zerolog.Nop()}
	if hosts, err := s.Hosts("prod", &config.Inventory{URL: srv.URL + "/inventory"}); err != nil || len(hosts) != 4 {
		t.Fatalf("url inventory: %d hosts, %v", len(hosts), err)
	}
	if _, err := s.Hosts("other", &config.Inventory{URL: srv.URL + "/nothing"}); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("404 inventory: %v", err)
	}
}

// FuzzParse feeds arbitrary JSON where an inventory is expected: no
// panic, no loop on cyclic children.
func FuzzParse(f *testing.F) {
	f.Add([]byte(ansible))
	f.Add([]byte(`{"a": {"children": ["b"]}, "b": {"children": ["a"], "hosts": ["h"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, err := Parse(data)
		if err == nil && hosts == nil {
			t.Fatal("Parse succeeded without a host list")
		}
	})
}
