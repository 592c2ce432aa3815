// Package need is how a test says it needs a real part of the machine
// (root, sshd, systemd-nspawn, nftables, Prometheus, Git, chromium...).
// When the part is missing the test is skipped with the reason, except in
// strict mode, where it fails: CI runs the suite strictly (.ci/run sets
// DRIFTLESS_STRICT_TESTS=1, and CI=true means the same), so that a test
// that could not run is never counted as passed. Every skip of the suite
// goes through this package (need_test.go checks it).
package need

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// StrictEnv names the variable that turns strict mode on.
const StrictEnv = "DRIFTLESS_STRICT_TESTS"

// Strict reports whether a missing part fails the test.
func Strict() bool {
	switch os.Getenv(StrictEnv) {
	case "1", "true":
		return true
	}
	return os.Getenv("CI") == "true"
}

// Missing ends the test for want of a real part: a failure in strict
// mode, a skip otherwise.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (strict mode: %s=1 or CI=true; a missing part fails the test)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// Root ends the test unless it runs as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root", why)
	}
}

// Tools ends the test unless every named command is on PATH, and returns
// the path of the first.
func Tools(t testing.TB, why string, names ...string) string {
	t.Helper()
	first := ""
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			Missing(t, "%s needs %s, which is not installed (test/install-deps.sh installs it)", why, n)
		}
		if first == "" {
			first = p
		}
	}
	return first
}

// Optional skips a test that is not meant to run in this run, in any
// mode: -short, an opt-in soak, a child process's helper test, a part the
// suite does not install (a Docker engine).
func Optional(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Skipf(format, args...)
}
