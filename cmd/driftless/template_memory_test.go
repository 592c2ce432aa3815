package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestValidateTemplateBombBoundedMemory runs the built binary's validate
// on a repository whose template writes 1 GiB, and on the same repository
// with a harmless template (the floor, measured in the same run). The
// bomb must fail at its file and line, and its peak memory must stay
// within a few template size limits (32 MiB) of the floor: without the
// bound it grows with the output (gigabytes).
func TestValidateTemplateBombBoundedMemory(t *testing.T) {
	bin := buildBinary(t)
	env := "environment: e\nhosts:\n  - name: h\n    transport: local\n    resources:\n      - file: /etc/out\n        template: files/t.tmpl\n"
	validate := func(tmpl string) (maxRSS int64, out string, code int) {
		dir := t.TempDir()
		for rel, content := range map[string]string{"environments/e.yaml": env, "files/t.tmpl": tmpl} {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(bin, "validate", dir)
		b, _ := cmd.CombinedOutput()
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Fatal("no rusage for the validate process")
		}
		return ru.Maxrss * 1024, string(b), cmd.ProcessState.ExitCode()
	}
	floor, out, code := validate("{{ range 1000 }}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef{{ end }}\n")
	if code != 0 {
		t.Fatalf("the harmless template does not validate (exit %d): %s", code, out)
	}
	bomb, out, code := validate("x\n{{ range 262144 }}" + strings.Repeat("0123456789abcdef", 256) + "{{ end }}\n")
	t.Logf("peak RSS: floor %d MiB, bomb %d MiB (ratio %.2f)", floor>>20, bomb>>20, float64(bomb)/float64(floor))
	// The size limit stops it; on a machine loaded enough, the time limit
	// may come first. Either is a clear error at the template's line.
	if code != 1 || !strings.Contains(out, "files/t.tmpl:2:") ||
		!strings.Contains(out, "(the template size limit)") && !strings.Contains(out, "(the template time limit)") {
		t.Errorf("validate of the bomb: exit %d, output %s; want exit 1 and a template limit at files/t.tmpl:2", code, out)
	}
	// The output buffer doubles (up to 64 MiB of backing array for a 32 MiB
	// cap), the old array is copied while growing, and the collector lets
	// the heap reach twice what is live: six limits over the floor.
	if limit := floor + 6*(32<<20); bomb > limit {
		t.Errorf("validate of the bomb peaked at %d MiB, over the floor (%d MiB) plus six template limits", bomb>>20, floor>>20)
	}
}
