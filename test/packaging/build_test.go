package packaging

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository's root, relative to this package's folder
// (where `go test` runs the tests).
const repoRoot = "../.."

// testVersion is stamped into the binaries the tests build, through the
// Dockerfile's own -X main.version flag, so `version` proves the flags
// were applied.
const testVersion = "packaging-test"

// buildStep is the Dockerfile's `go build` command, split into the
// environment it sets and the arguments of `go`.
type buildStep struct {
	env  []string
	args []string
}

// dockerfileBuild reads the Dockerfile's `RUN ... go build` step, so that
// the tests build the binary exactly as the image does, and not with a
// copy of its flags that could drift from it.
func dockerfileBuild(t testing.TB) buildStep {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatalf("open the Dockerfile: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "RUN ") || !strings.Contains(line, "go build") {
			continue
		}
		// The step continues with `&& ...` on the next lines; the build is
		// the first command of the step.
		cmd := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "RUN ")), `\`)
		if i := strings.Index(cmd, "&&"); i >= 0 {
			cmd = cmd[:i]
		}
		words, err := shellWords(strings.ReplaceAll(cmd, "${VERSION}", testVersion))
		if err != nil {
			t.Fatalf("Dockerfile build step %q: %v", line, err)
		}
		var step buildStep
		for i, w := range words {
			if w == "go" {
				step.args = words[i+1:]
				break
			}
			if !strings.Contains(w, "=") {
				t.Fatalf("Dockerfile build step %q: %q before go is not a variable assignment", line, w)
			}
			step.env = append(step.env, w)
		}
		if len(step.args) == 0 || step.args[0] != "build" {
			t.Fatalf("Dockerfile build step %q does not run go build", line)
		}
		return step
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the Dockerfile: %v", err)
	}
	t.Fatal("the Dockerfile has no RUN step running go build")
	return buildStep{}
}

// shellWords splits a command line as sh would for the simple quoting the
// Dockerfile uses: words separated by blanks, double or single quotes
// grouping blanks into one word.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// buildDriftless builds ./cmd/driftless with the Dockerfile's step into a
// temporary folder and returns the binary's path. The Go build cache makes
// every build after the first one of a run cheap.
func buildDriftless(t testing.TB) string {
	t.Helper()
	step := dockerfileBuild(t)
	out := filepath.Join(t.TempDir(), "driftless")
	args := make([]string, 0, len(step.args))
	for i := 0; i < len(step.args); i++ {
		// The image writes to /out; the test writes to its own folder.
		if step.args[i] == "-o" && i+1 < len(step.args) {
			args = append(args, "-o", out)
			i++
			continue
		}
		args = append(args, step.args[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), step.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// runBinary runs the binary with args and returns its standard output.
func runBinary(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestDockerfileBuildStep checks the image's build step asks for what a
// scratch image needs: no cgo (so no C library to load) and -trimpath (no
// paths of the build machine in the binary).
func TestDockerfileBuildStep(t *testing.T) {
	step := dockerfileBuild(t)
	if !slices.Contains(step.env, "CGO_ENABLED=0") {
		t.Errorf("the build step sets %v, want CGO_ENABLED=0 for a static binary", step.env)
	}
	if !slices.Contains(step.args, "-trimpath") {
		t.Errorf("the build step %v has no -trimpath", step.args)
	}
	if !slices.Contains(step.args, "./cmd/driftless") {
		t.Errorf("the build step %v does not build ./cmd/driftless", step.args)
	}
}

// testStaticBinary builds the daemon as the Dockerfile does and checks
// the result can run in a scratch image: no program interpreter, no
// dynamic section, no shared library, and it runs.
func testStaticBinary(t *testing.T, bin string) {
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("read the binary as ELF: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter (PT_INTERP): it is dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a dynamic segment (PT_DYNAMIC)")
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("the binary has a .dynamic section")
	}
	if libs, err := f.ImportedLibraries(); err != nil {
		t.Errorf("list imported libraries: %v", err)
	} else if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if got, want := runBinary(t, bin, "version"), "driftless "+testVersion+"\n"; got != want {
		t.Errorf("version printed %q, want %q (the Dockerfile's -X main.version flag)", got, want)
	}
	// -trimpath: no folder of this machine may be written in the binary.
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), abs+string(filepath.Separator)) {
		t.Errorf("the binary contains the build folder %s: -trimpath did not apply", abs)
	}
}

// TestBuiltBinary builds the daemon once, as the Dockerfile does, and runs
// every check that needs the binary on that one build: the machine is
// shared, and linking is the slow part.
func TestBuiltBinary(t *testing.T) {
	bin := buildDriftless(t)
	for _, c := range []struct {
		name string
		run  func(t *testing.T, bin string)
	}{
		{"static", testStaticBinary},
		{"unit-verifies", testUnitVerifies},
		{"unit-under-systemd", testUnitRunsUnderSystemd},
		{"monitoring-metrics-exported", testDashboardAndAlertMetricsAreExported},
		{"doc-commands-exist", testDocCommandsExist},
		{"shipped-command-lines", testShippedCommandLines},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, bin) })
	}
}
