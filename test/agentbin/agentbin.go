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
	return BuildProgram(tb, "./cmd/driftless")
}

// BuildProgram builds the module's main package pkg (a path from the
// module's top, "./test/nativefloor") statically, as Build does, and
// returns the binary's path.
func BuildProgram(tb testing.TB, pkg string) string {
	tb.Helper()
	top, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("find the module: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(top)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
