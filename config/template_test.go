package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// TestTemplateBounds: a template that writes too much, or loops or
// recurses too long without writing, fails with a clear error at the file
// and line of the loop, within its limits; a template within them renders.
func TestTemplateBounds(t *testing.T) {
	env := "environment: e\nhosts:\n  - name: h\n    resources:\n      - file: /etc/out\n        template: files/t.tmpl\n"
	// Each case is stopped by one bound; the other is far away, so that a
	// loaded machine cannot make the wrong one fire.
	size := config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), TemplateMaxBytes: 64 << 10, TemplateTimeout: time.Minute}
	clock := config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), TemplateMaxBytes: 1 << 30, TemplateTimeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		name, tmpl, want string
		opts             config.LoadOptions
	}{
		{"large output", "head\n{{ range 100000000 }}0123456789abcdef{{ end }}\n", "files/t.tmpl:2:9: for host h (file /etc/out declared at environments/e.yaml:5:9): the output is larger than 65536 bytes (the template size limit)", size},
		{"exponential output", "{{ define \"a\" }}{{ template \"b\" }}{{ template \"b\" }}{{ end }}" +
			"{{ define \"b\" }}{{ template \"c\" }}{{ template \"c\" }}{{ end }}" +
			"{{ define \"c\" }}0123456789{{ template \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", "the output is larger than 65536 bytes", size},
		{"silent loop", "a\nb\n{{ range 2000000000 }}{{ end }}", "files/t.tmpl:3:9: for host h (file /etc/out declared at environments/e.yaml:5:9): the evaluation took longer than 300ms (the template time limit)", clock},
		{"nested silent loops", "{{ range 100000 }}\n{{- range 100000 }}{{ end }}{{ end }}", "files/t.tmpl:2:10: for host h", clock},
		{"exponential recursion", "{{ define \"a\" }}{{ template \"b\" }}{{ template \"b\" }}{{ end }}" +
			"{{ define \"b\" }}{{ template \"c\" }}{{ template \"c\" }}{{ end }}" +
			"{{ define \"c\" }}{{ template \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", "the evaluation took longer than 300ms", clock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTestFile(t, dir, "environments/e.yaml", env)
			writeTestFile(t, dir, "files/t.tmpl", tc.tmpl)
			start := time.Now()
			_, err := config.LoadRevision(dir, tc.opts)
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("loading took %s, past its limits by far", took)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	writeTestFile(t, dir, "environments/e.yaml", env)
	writeTestFile(t, dir, "files/t.tmpl", "{{ range 3 }}x{{ end }} {{ .Host.Name }}\n")
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), TemplateMaxBytes: 64 << 10, TemplateTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := rev.Environments[0].Hosts[0].Resources[0].Spec.(*targets.FileSpec).Content; got != "xxx h\n" {
		t.Errorf("rendered %q", got)
	}
}

func writeTestFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
