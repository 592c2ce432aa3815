// Package agentbin builds the driftless binary that tests copy to their
// hosts as the agent: static, as the Makefile and the Dockerfile build it.
package agentbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build builds the driftless binary into a temporary folder of tb and
// returns its path. Go's build cache makes every build after the first a
// link only.
func Build(tb testing.TB) string {
	tb.Helper()
	top, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("find the module: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "driftless")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/driftless")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(top)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build driftless: %v\n%s", err, out)
	}
	return bin
}
