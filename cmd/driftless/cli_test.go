package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
)

// buildDriftless builds the command as a user gets it, with a version
// stamped in, and returns the binary's path.
func buildDriftless(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "driftless")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3-test", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the built binary and returns its exit code and outputs.
func runBinary(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, "", ""
}

// TestCommandLine drives the built binary as a user types it.
func TestCommandLine(t *testing.T) {
	bin := buildDriftless(t)
	t.Run("help version completion", func(t *testing.T) { testHelpVersionCompletion(t, bin) })
	t.Run("usage errors exit 2", func(t *testing.T) { testUsageErrorsExit2(t, bin) })
	t.Run("single-dash long flags", func(t *testing.T) { testSingleDashLongFlags(t, bin) })
	t.Run("output formats", func(t *testing.T) { testOutputFormats(t, bin) })
	t.Run("errors once", func(t *testing.T) { testErrorsOnce(t, bin) })
}

// testErrorsOnce: a failed apply, an invalid repository and a missing
// folder each print their error once, on stderr, naming the operation
// once; with logs asked for, durations carry their unit.
func testErrorsOnce(t *testing.T, bin string) {
	repo := t.TempDir()
	if err := os.CopyFS(repo, os.DirFS("../../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(repo, "environments", "quickstart.yaml")
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	failing := string(b) + "  - name: always fails\n    command: 'echo nope >&2; false'\n"
	if err := os.WriteFile(envFile, []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	// The progress lines on stderr name the failed check; its error, with
	// the check's output, comes once, after them.
	code, out, stderr := runBinary(t, bin, "apply", repo, "--sandbox-root", t.TempDir())
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || strings.Count(stderr, "(stderr: nope)") != 1 || strings.Contains(out, "always fails") || !strings.HasPrefix(out, "quickstart: rolled_back") ||
		strings.Count(stderr, "driftless apply:") != 1 || !strings.HasPrefix(lines[len(lines)-1], "driftless apply: environment quickstart: rolled_back: ") ||
		!strings.Contains(stderr, "quickstart batch 1/1 local: check \"always fails\" attempt 1/1 failed\n") {
		t.Errorf("failed apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, _, stderr = runBinary(t, bin, "apply", "../../config/testdata/bad/paths", "--sandbox-root", t.TempDir())
	if code != 1 || strings.Count(stderr, `"etc/app.conf" must be absolute`) != 1 {
		t.Errorf("invalid repository: exit %d\n%s", code, stderr)
	}
	missing := filepath.Join(t.TempDir(), "nonexist")
	code, _, stderr = runBinary(t, bin, "plan", missing)
	if code != 1 || strings.Count(stderr, "hash folder") != 1 || !strings.Contains(stderr, missing) {
		t.Errorf("missing folder: exit %d\n%s", code, stderr)
	}
	// Logs, when asked for, give durations with their unit.
	_, _, stderr = runBinary(t, bin, "apply", repo, "--sandbox-root", t.TempDir(), "--log-level", "info")
	found := false
	for _, line := range strings.Split(stderr, "\n") {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) != nil {
			continue
		}
		if _, ok := fields["duration"]; ok {
			t.Errorf("a log line has a duration without its unit: %s", line)
		}
		if _, ok := fields["duration_ms"]; ok {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line gives a duration_ms:\n%s", stderr)
	}
}

// decodeOutput parses a command's stdout as JSON or YAML into plain
// values, numbers as float64, so that both formats compare equal.
func decodeOutput(t *testing.T, format, out string) any {
	t.Helper()
	var v any
	if format == "yaml" {
		if err := yaml.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("stdout is not YAML: %v\n%s", err, out)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("YAML output has no JSON form: %v", err)
		}
		out = string(b)
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	return v
}

// testOutputFormats: every command that prints data prints it as text,
// JSON or YAML; JSON and YAML carry the same document, with the field
// names of the HTTP API, nothing else on stdout, and "->" as typed.
func testOutputFormats(t *testing.T, bin string) {
	w := newClientWorld(t)
	root := t.TempDir()
	example := "../../examples/quickstart"
	api := func(path string) any {
		resp, err := http.Get(w.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `\u003e`) {
			t.Errorf("the API escapes > in %s", path)
		}
		return decodeOutput(t, "json", string(b))
	}
	for _, tc := range []struct {
		args []string
		same any // the API answer the output must equal, if any
	}{
		{[]string{"validate", example}, nil},
		{[]string{"plan", example, "--sandbox-root", root}, nil},
		{[]string{"status", "--addr", w.srv.URL}, api("/api/v1/environments")},
		{[]string{"status", "prod", "--addr", w.srv.URL}, api("/api/v1/environments/prod")},
		{[]string{"history", "prod", "--addr", w.srv.URL}, api("/api/v1/environments/prod/history?limit=20")},
	} {
		var docs []any
		for _, format := range []string{"json", "yaml"} {
			code, out, stderr := runBinary(t, bin, append(tc.args, "-o", format)...)
			if code != 0 || stderr != "" {
				t.Fatalf("%q -o %s: exit %d, stderr %q", tc.args, format, code, stderr)
			}
			if strings.Contains(out, `\u003e`) {
				t.Errorf("%q -o %s escapes >: %s", tc.args, format, out)
			}
			docs = append(docs, decodeOutput(t, format, out))
		}
		if !reflect.DeepEqual(docs[0], docs[1]) {
			t.Errorf("%q: JSON and YAML differ:\n%v\n%v", tc.args, docs[0], docs[1])
		}
		if tc.same != nil && !reflect.DeepEqual(docs[0], tc.same) {
			t.Errorf("%q: -o json differs from the API:\n%v\n%v", tc.args, docs[0], tc.same)
		}
		if code, out, _ := runBinary(t, bin, append(tc.args, "-o", "text")...); code != 0 || out == "" || strings.HasPrefix(out, "{") || strings.HasPrefix(out, "[") {
			t.Errorf("%q -o text: exit %d, %q", tc.args, code, out)
		}
		if code, out, stderr := runBinary(t, bin, append(tc.args, "-o", "xml")...); code != 2 || out != "" || !strings.Contains(stderr, `unknown output format "xml"`) {
			t.Errorf("%q -o xml: exit %d, stdout %q, stderr %q", tc.args, code, out, stderr)
		}
	}
	// A plan's text and JSON name the commit alike, and JSON keeps "->".
	_, text, _ := runBinary(t, bin, "plan", example, "--sandbox-root", root)
	_, js, _ := runBinary(t, bin, "plan", example, "--sandbox-root", root, "-o", "json")
	if !strings.Contains(text, "(commit ") || !strings.Contains(js, `"commit": "`) || !strings.Contains(js, "absent -> present") {
		t.Errorf("plan text and JSON disagree:\n%s\n%s", text, js)
	}
	// A failing validation in JSON: the errors with their positions, exit 1.
	code, out, _ := runBinary(t, bin, "validate", "../../config/testdata/bad/paths", "-o", "json")
	doc, _ := decodeOutput(t, "json", out).(map[string]any)
	errs, _ := doc["errors"].([]any)
	first, _ := errs[0].(map[string]any)
	if code != 1 || doc["valid"] != false || len(errs) == 0 || first["file"] != "environments/e.yaml" || first["line"] == nil || first["message"] == "" {
		t.Errorf("validate -o json of a bad repository: exit %d\n%s", code, out)
	}
	// apply and sync: JSON and YAML parse, with the API's field names.
	for _, format := range []string{"json", "yaml"} {
		code, out, stderr := runBinary(t, bin, "apply", example, "--sandbox-root", t.TempDir(), "-o", format)
		runs, _ := decodeOutput(t, format, out).([]any)
		if code != 0 || len(runs) != 1 || runs[0].(map[string]any)["result"] != "success" {
			t.Errorf("apply -o %s: exit %d\n%s%s", format, code, out, stderr)
		}
		code, out, stderr = runBinary(t, bin, "sync", "prod", "--addr", w.srv.URL, "--token-file", w.tokenFile, "-o", format)
		st, _ := decodeOutput(t, format, out).(map[string]any)
		if code != 0 || st["name"] != "prod" || st["applied"] != w.rev2.Commit {
			t.Errorf("sync -o %s: exit %d\n%s%s", format, code, out, stderr)
		}
	}
}

// testHelpVersionCompletion: help in every spelling goes to stdout and
// exits 0, names the command's arguments and shows examples; --version and
// shell completion work as in other tools built on cobra.
func testHelpVersionCompletion(t *testing.T, bin string) {
	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"help"}} {
		code, out, stderr := runBinary(t, bin, args...)
		if code != 0 || stderr != "" || !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "Exit codes: 0 success; 1 error") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, stderr, out)
		}
	}
	usages := map[string]string{
		"serve": "driftless serve [flags]", "validate": "driftless validate [flags] [DIR]",
		"plan": "driftless plan [flags] [DIR]", "apply": "driftless apply [flags] [DIR]",
		"status": "driftless status [flags] [ENVIRONMENT]", "history": "driftless history [flags] ENVIRONMENT",
		"sync": "driftless sync [flags] ENVIRONMENT", "rollback": "driftless rollback [flags] ENVIRONMENT",
		"demo": "driftless demo [flags]", "version": "driftless version",
	}
	for name, usage := range usages {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			code, out, stderr := runBinary(t, bin, args...)
			if code != 0 || stderr != "" || !strings.Contains(out, "Usage:\n  "+usage) || !strings.Contains(out, "Examples:\n  driftless ") {
				t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, stderr, out)
			}
		}
	}
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		if code, out, stderr := runBinary(t, bin, args...); code != 0 || out != "driftless 1.2.3-test\n" || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	for shell, want := range map[string]string{"bash": "complete -o default -F __start_driftless driftless", "zsh": "#compdef driftless", "fish": "complete -c driftless"} {
		if code, out, stderr := runBinary(t, bin, "completion", shell); code != 0 || !strings.Contains(out, want) || stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q, stdout lacks %q", shell, code, stderr, want)
		}
	}
	// The completion script asks the binary itself: sub-commands and flags come back.
	if code, out, _ := runBinary(t, bin, "__complete", "pl"); code != 0 || !strings.Contains(out, "plan\t") {
		t.Errorf("completing pl: exit %d, %q", code, out)
	}
	if code, out, _ := runBinary(t, bin, "__complete", "plan", "--sandbox"); code != 0 || !strings.Contains(out, "--sandbox-root\t") {
		t.Errorf("completing plan --sandbox: exit %d, %q", code, out)
	}
}

// testUsageErrorsExit2: every command line that cannot run as typed exits
// 2, prints nothing on stdout, and says what is wrong and the usage on stderr.
func testUsageErrorsExit2(t *testing.T, bin string) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"no-such-command"}, `driftless: unknown command "no-such-command"`},
		{[]string{"statsu"}, "did you mean status?"},
		{[]string{"plan", "--no-such-flag"}, "driftless plan: unknown flag: --no-such-flag"},
		{[]string{"plan", "-no-such-flag"}, "driftless plan: unknown flag: --no-such-flag"},
		{[]string{"validate", "a", "b"}, "usage: driftless validate [flags] [DIR]"},
		{[]string{"plan", "a", "b"}, "usage: driftless plan [flags] [DIR]"},
		{[]string{"apply", "a", "b"}, "usage: driftless apply [flags] [DIR]"},
		{[]string{"status", "a", "b"}, "usage: driftless status [flags] [ENVIRONMENT]"},
		{[]string{"history"}, "usage: driftless history [flags] ENVIRONMENT"},
		{[]string{"sync"}, "usage: driftless sync [flags] ENVIRONMENT"},
		{[]string{"rollback", "a", "b"}, "usage: driftless rollback [flags] ENVIRONMENT"},
		{[]string{"serve", "extra"}, "usage: driftless serve [flags]"},
		{[]string{"demo", "extra"}, "usage: driftless demo [flags]"},
		{[]string{"version", "extra"}, "usage: driftless version"},
		{[]string{"plan", "--log-level", "loud", "../../examples/quickstart"}, "driftless plan: "},
		{[]string{"history", "prod", "-n", "many"}, `invalid argument "many"`},
	} {
		code, out, stderr := runBinary(t, bin, tc.args...)
		if code != 2 || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want %q", tc.args, code, out, stderr, tc.want)
		}
	}
}

// testSingleDashLongFlags: the single-dash spellings of earlier versions
// still work, before or after the arguments, with a value or with "="; the
// earlier name of the sandbox flag works and names the new one.
func testSingleDashLongFlags(t *testing.T, bin string) {
	root := t.TempDir()
	example := "../../examples/quickstart"
	for _, args := range [][]string{
		{"plan", "-sandbox-root", root, "-detailed-exitcode", example},
		{"plan", example, "-sandbox-root=" + root, "--detailed-exitcode"},
		{"plan", "--sandbox-root", root, example, "-o", "json", "-detailed-exitcode"},
	} {
		if code, out, stderr := runBinary(t, bin, args...); code != 2 || out == "" {
			t.Errorf("%q: exit %d (want 2: changes), stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	code, out, stderr := runBinary(t, bin, "validate", "-root", root, example)
	if code != 0 || !strings.Contains(stderr, "use --sandbox-root") || strings.Contains(out, "deprecated") {
		t.Errorf("validate -root: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestOneShotSSHSettings: plan and apply reach an SSH host with the key
// and known_hosts given as flags, or read from the daemon's configuration
// file, without an SSH agent; with neither, the error says what to give.
// It runs the built binary: the driftless agent it puts on the host is
// that binary.
func TestOneShotSSHSettings(t *testing.T) {
	bin := agentbin.Build(t)
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("web-1")
	repo := t.TempDir()
	env := "environment: edge\nhosts:\n  - name: web-1\n    address: " + h.Address + "\n    resources:\n" +
		"      - file: /etc/oneshot.conf\n        content: \"from the command line\\n\"\n        mode: \"0644\"\n"
	if err := os.MkdirAll(filepath.Join(repo, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "environments", "edge.yaml"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "driftless.yaml")
	if err := os.WriteFile(cfg, []byte("ssh:\n  key_file: "+lab.ClientKeyFile+"\n  known_hosts: "+lab.KnownHostsFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")

	code, out, stderr := runBinary(t, bin, "plan", repo)
	if code != 1 || !strings.Contains(out, "give --ssh-key FILE, --ssh-agent, or --config") || strings.Contains(out, "connect to web-1: connect to web-1") {
		t.Fatalf("plan without SSH settings: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runBinary(t, bin, "plan", repo, "--detailed-exitcode", "--ssh-key", lab.ClientKeyFile, "--ssh-known-hosts", lab.KnownHostsFile)
	if code != 2 || !strings.Contains(out, "+ file:/etc/oneshot.conf (create)") {
		t.Fatalf("plan with --ssh-key: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := runBinary(t, bin, "apply", "--config", cfg, repo); code != 0 {
		t.Fatalf("apply with --config: exit %d\n%s%s", code, out, stderr)
	}
	if got, err := os.ReadFile(filepath.Join(h.Root, "etc", "oneshot.conf")); err != nil || string(got) != "from the command line\n" {
		t.Fatalf("the host's file after apply: %q, %v", got, err)
	}
	// The host was reached through the agent: its binary is there.
	if agents, _ := filepath.Glob(filepath.Join(h.Root, "var/lib/driftless/agent/*")); len(agents) == 0 {
		t.Fatal("no agent binary on the host after plan and apply")
	}
}
