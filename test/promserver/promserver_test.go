package promserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartScrapesTargets serves a metric, starts Prometheus on it and
// reads the metric back through the query API.
func TestStartScrapesTargets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE promserver_test_gauge gauge\npromserver_test_gauge 42\n")
	}))
	defer srv.Close()
	for _, target := range []string{strings.TrimPrefix(srv.URL, "http://"), srv.URL + "/metrics"} {
		t.Run(target, func(t *testing.T) {
			base := Start(t, target)
			got, err := Query(base, "promserver_test_gauge")
			if err != nil {
				t.Fatal(err)
			}
			if got != "42" {
				t.Fatalf("promserver_test_gauge = %q, want 42", got)
			}
			if got, err := Query(base, "up"); err != nil || got != "1" {
				t.Fatalf("up = %q (%v), want 1", got, err)
			}
		})
	}
}

// TestStartWithRules loads a rule file and waits for its recording rule.
func TestStartWithRules(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: t\n    rules:\n      - record: promserver_test:doubled\n        expr: vector(21) * 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := StartWith(t, Options{RuleFiles: []string{rules}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := Query(base, "promserver_test:doubled")
		if err == nil && got == "42" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording rule not evaluated: %q %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBadQueryIsAnError checks that Query reports Prometheus's own error.
func TestBadQueryIsAnError(t *testing.T) {
	base := Start(t)
	if _, err := Query(base, "sum(("); err == nil {
		t.Fatal("Query accepted a malformed query")
	}
}
