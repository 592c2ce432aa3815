package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run calls a subcommand in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), &cliEnv{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// TestValidateBadFixtures runs `driftless validate` on every bad fixture
// of the config package: each exits 1 and prints exactly its expected
// errors, with positions.
func TestValidateBadFixtures(t *testing.T) {
	dirs, err := filepath.Glob("../../config/testdata/bad/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no bad fixtures found: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "expected.txt"))
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := run(t, "validate", dir)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q", code, stdout)
			}
			if strings.TrimSpace(stderr) != strings.TrimSpace(string(want)) {
				t.Fatalf("errors differ\n got:\n%s\nwant:\n%s", stderr, want)
			}
		})
	}
}

// TestApplyInvalidRevisionAppliesNothing: a revision with one bad file
// among good ones changes nothing at all on the hosts.
func TestApplyInvalidRevisionAppliesNothing(t *testing.T) {
	repo := t.TempDir()
	if err := os.CopyFS(repo, os.DirFS("../../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	bad := "environment: broken\nhosts:\n  - name: h\n    transport: local\n    resources:\n      - file: relative/path\n        content: x\n"
	if err := os.WriteFile(filepath.Join(repo, "environments", "broken.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	code, _, stderr := run(t, "apply", "-root", root, repo)
	if code != 1 {
		t.Fatalf("apply exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "environments/broken.yaml:6:") {
		t.Fatalf("error does not name the bad file and line: %s", stderr)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("an invalid revision changed the sandbox: %v", entries)
	}
}

// TestPlanDetailedExitcode: 2 while there are changes, 0 once applied, 1 on errors.
func TestPlanDetailedExitcode(t *testing.T) {
	root, state := t.TempDir(), filepath.Join(t.TempDir(), "state.db")
	example := "../../examples/quickstart"
	code, out, stderr := run(t, "plan", "-detailed-exitcode", "-root", root, "-state", state, example)
	if code != 2 {
		t.Fatalf("plan before apply: exit %d, want 2\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "+ file:/etc/shop/app.conf (create)") || !strings.Contains(out, `+listen = "127.0.0.1:8080"`) {
		t.Fatalf("plan does not show the file and its diff:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "local", "etc", "shop", "app.conf")); !os.IsNotExist(err) {
		t.Fatalf("plan changed the host: %v", err)
	}
	if code, out, stderr := run(t, "apply", "-root", root, "-state", state, example); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := run(t, "plan", "-detailed-exitcode", "-root", root, "-state", state, example); code != 0 {
		t.Fatalf("plan after apply: exit %d, want 0\n%s%s", code, out, stderr)
	}
	if code, _, _ := run(t, "plan", "-detailed-exitcode", "../../config/testdata/bad/paths"); code != 1 {
		t.Fatalf("plan of an invalid revision: exit %d, want 1", code)
	}
}

func TestValidateGoodAndUsage(t *testing.T) {
	if code, out, _ := run(t, "validate", "../../examples/quickstart"); code != 0 || !strings.HasPrefix(out, "ok: 1 environments, 1 hosts, 7 resources") {
		t.Fatalf("validate quickstart: exit %d, %q", code, out)
	}
	if code, _, stderr := run(t, "no-such-command"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, stderr)
	}
	if code, out, _ := run(t, "version"); code != 0 || !strings.HasPrefix(out, "driftless ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// TestDemo runs the demo as the README's first command does, in-process,
// twice in the same folder: the second run replaces what the first left.
// Its metrics are read once the correction is counted, and it ends by
// saying where to go next. A folder it did not make is left alone.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		code, out, stderr := run(t, "demo", "--dir", dir, "--timeout", "50s")
		if code != 0 {
			t.Fatalf("demo run %d: exit %d\n%s\n%s", i+1, code, out, stderr)
		}
		for _, want := range []string{
			"+ file:/etc/shop/app.conf (create)",
			"applied. /etc/shop/app.conf now reads:",
			"corrected: /etc/shop/app.conf is back to the declared content.",
			`driftless_changes_applied_total{action="update",environment="quickstart",kind="file"} 1`,
			"demo finished.",
			"docs/getting-started.md",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("demo run %d output lacks %q:\n%s", i+1, want, out)
			}
		}
		if !strings.Contains(stderr, `"message":"correcting drift"`) {
			t.Errorf("the drift correction was not logged")
		}
	}
	foreign := t.TempDir()
	if err := os.Mkdir(filepath.Join(foreign, "repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "demo", "--dir", foreign); code != 1 || !strings.Contains(stderr, "was not made by the demo") {
		t.Fatalf("demo in a folder with a foreign repo/: exit %d, %s", code, stderr)
	}
}

// TestFlagsAfterArguments: flags may follow the folder or environment
// argument, as operators type them; "--" ends the flags.
func TestFlagsAfterArguments(t *testing.T) {
	root := t.TempDir()
	code, out, stderr := run(t, "plan", "../../examples/quickstart", "-detailed-exitcode", "-root", root)
	if code != 2 || !strings.Contains(out, "+ file:/etc/shop/app.conf (create)") {
		t.Fatalf("plan DIR -flags: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := run(t, "validate", "--", "-no-such-folder"); code != 1 || !strings.Contains(stderr, "-no-such-folder") {
		t.Fatalf("validate -- -name: exit %d, %s", code, stderr)
	}
}

// TestAgentPullFlagsNeedPull: the pull mode flags are refused without
// --pull rather than ignored.
func TestAgentPullFlagsNeedPull(t *testing.T) {
	code, _, stderr := run(t, "agent", "--config", "agent.yaml")
	if code != 2 || !strings.Contains(stderr, "add --pull") {
		t.Errorf("agent --config without --pull: exit %d, %q; want 2 and a usage error", code, stderr)
	}
}
