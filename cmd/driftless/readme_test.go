package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

// readmeCommands returns the commands of the README's first sh block,
// without their comments: the two commands a newcomer runs first.
func readmeCommands(t *testing.T, readme string) []string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !in && line == "```sh":
			in = true
		case in && line == "```":
			return cmds
		case in:
			if c, _, _ := strings.Cut(line, "#"); strings.TrimSpace(c) != "" {
				cmds = append(cmds, strings.Join(strings.Fields(c), " "))
			}
		}
	}
	t.Fatalf("%s has no complete ```sh block", readme)
	return nil
}

// TestReadmeCommandsFromFreshClone checks the README's promise: in a fresh
// clone of the repository, its first command runs the demo to the end, and
// its second is the whole test suite, the one .ci/run calls. Running that
// suite here would run this test again, so its recipe is checked instead:
// make resolves it to installing the dependencies, go vet and go test of
// every package.
func TestReadmeCommandsFromFreshClone(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "-short: cloning and running the demo takes a minute")
	}
	for _, tool := range []string{"git", "go", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			need.Missing(t, "%s is not on PATH", tool)
		}
	}
	top, err := exec.Command("git", "-C", "../..", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		need.Missing(t, "not inside a Git work tree, nothing to clone: %v", err)
	}
	cmds := readmeCommands(t, "../../README.md")
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/driftless demo" || cmds[1] != "make test" {
		t.Fatalf("the README opens with %q, want the demo and the test suite", cmds)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	clone := filepath.Join(t.TempDir(), "fresh")
	if out, err := exec.CommandContext(ctx, "git", "clone", "-q", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}

	demo := exec.CommandContext(ctx, "sh", "-c", cmds[0])
	demo.Dir = clone
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a fresh clone: %v\n%s", cmds[0], err, out)
	}
	for _, want := range []string{"applied. /etc/shop/app.conf now reads:", "corrected: /etc/shop/app.conf is back to the declared content.", "demo finished."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q\n%s", want, out)
		}
	}

	recipe, err := exec.CommandContext(ctx, "make", "-n", "-C", clone, "test").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n test: %v\n%s", err, recipe)
	}
	// The recipe installs the packages, then vets and tests every package
	// and says how long that took.
	for _, want := range []string{"sh test/install-deps.sh", "go vet ./...", "go test -count=1 -timeout 60m ./...", `echo "test suite: exit $rc after`} {
		if !strings.Contains(string(recipe), want) {
			t.Errorf("make test does not run %q:\n%s", want, recipe)
		}
	}
	if out, err := exec.CommandContext(ctx, "sh", "-n", filepath.Join(clone, "test", "install-deps.sh")).CombinedOutput(); err != nil {
		t.Errorf("test/install-deps.sh is not valid sh: %v\n%s", err, out)
	}
	ci, err := os.ReadFile(filepath.Join(clone, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(ci)+"\n", "\nmake test\n") || !strings.Contains(string(ci), "\nexport DRIFTLESS_STRICT_TESTS=1\n") {
		t.Errorf(".ci/run does not run the README's test command in strict mode:\n%s", ci)
	}
	if st, err := os.Stat(filepath.Join(clone, ".ci", "run")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf(".ci/run is not executable in a clone: %v", err)
	}
}
