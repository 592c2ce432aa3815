package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/reconciler/status"
)

// TestTrafficHostStaysOutAfterFailedRollback: a host whose release fails
// verification is taken out of rotation and rolled back; when the
// verification after the rollback fails too, it stays out (no "in" hook),
// and the run's error names it.
func TestTrafficHostStaysOutAfterFailedRollback(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	hooks, marker := filepath.Join(dir, "hooks.log"), filepath.Join(dir, "healthy")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	traffic := fmt.Sprintf("traffic:\n  command:\n    out: 'echo \"out $DRIFTLESS_HOST\" >> %[1]s'\n    in: 'echo \"in $DRIFTLESS_HOST\" >> %[1]s'\n", hooks)
	check := fmt.Sprintf("verify:\n  - name: healthy\n    command: 'test -f %s'\n", marker)
	env := func(content, extra string) map[string]string {
		return map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", content), traffic+extra)}
	}
	if runs, err := f.r.ApplyRevision(ctx, f.revision(env("a1\n", check))); err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("rev1: %+v %v", runs, err)
	}
	// The host falls ill: rev2's own check fails, and so does rev1's after
	// the rollback.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	runs, err := f.r.ApplyRevision(ctx, f.revision(env("a2\n", check)))
	if err == nil || len(runs) != 1 || runs[0].Result != status.ResultRolledBack {
		t.Fatalf("rev2: %+v %v", runs, err)
	}
	if !strings.Contains(runs[0].Error, "after rollback") || !strings.Contains(runs[0].Error, "left out of rotation: h1") {
		t.Errorf("run error = %q, want the failed rollback and h1 left out", runs[0].Error)
	}
	b, err := os.ReadFile(hooks)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "out h1\nin h1\nout h1\n" {
		t.Errorf("hooks = %q, want h1 out and in around rev1, then out for rev2 and never back in", got)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "a1\n" {
		t.Errorf("a.conf after rollback = %q", got)
	}
}
