package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

func cmdRes(name string, spec CommandSpec) config.Resource {
	return config.Resource{Kind: "command", Name: name, Spec: &spec}
}

func TestCommandCreates(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	if err := os.Mkdir(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(root, "work/initialised")
	r := cmdRes("init", CommandSpec{
		// The command proves it runs in Dir and sees DRIFTLESS_ROOT.
		Run:     `test "$(pwd)" = "$DRIFTLESS_ROOT/work" && echo ran >> initialised && echo run >> "$DRIFTLESS_ROOT/log"`,
		Creates: "/work/initialised",
		Dir:     "/work",
		Undo:    `rm -f initialised; echo undo >> "$DRIFTLESS_ROOT/log"`,
	})
	expectChange(t, l, r, Create, "run: test", "/work/initialised does not exist")
	changes := converge(t, l, r)
	assertFile(t, marker, "ran\n", 0o644)

	// The creates file deleted behind its back: the command runs again.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	expectChange(t, l, r, Create)
	converge(t, l, r)
	assertFile(t, filepath.Join(root, "log"), "run\nrun\n", 0o644)

	// Restore of a pass where the command ran runs Undo.
	restore(t, l, []config.Resource{r}, changes)
	if _, err := os.Lstat(marker); !os.IsNotExist(err) {
		t.Fatalf("undo did not run: %v", err)
	}
	assertFile(t, filepath.Join(root, "log"), "run\nrun\nundo\n", 0o644)

	// Restore of a pass where the command was not needed does nothing.
	converge(t, l, r)
	noop := plan(t, l, r)
	if err := Drivers()["command"].Restore(context.Background(), l, r, noop[0].Before); err != nil {
		t.Fatal(err)
	}
	assertFile(t, marker, "ran\n", 0o644)
}

func TestCommandUnless(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	state := filepath.Join(root, "state")
	writeTestFile(t, root, "/state", "off\n", 0o644)
	r := cmdRes("switch-on", CommandSpec{
		Run:    `echo on > "$DRIFTLESS_ROOT/state"`,
		Unless: `grep -qx on "$DRIFTLESS_ROOT/state"`,
	})
	expectChange(t, l, r, Create, "unless exited 1")
	changes := converge(t, l, r)
	assertFile(t, state, "on\n", 0o644)

	writeTestFile(t, root, "/state", "off\n", 0o644)
	expectChange(t, l, r, Create)
	converge(t, l, r)
	assertFile(t, state, "on\n", 0o644)

	// Without Undo, Restore does nothing.
	restore(t, l, []config.Resource{r}, changes)
	assertFile(t, state, "on\n", 0o644)
}

// TestCommandGuardNativeAndPreview: the local transport observes a
// command natively (no shell), running its unless guard for a
// trusted revision; a preview observes it with the guard left out, never
// run, and reported as not evaluated.
func TestCommandGuardNativeAndPreview(t *testing.T) {
	root := t.TempDir()
	ran := filepath.Join(root, "guard-ran")
	r := cmdRes("guarded", CommandSpec{Run: "true", Creates: "/made", Unless: `touch "$DRIFTLESS_ROOT/guard-ran"; exit 3`})
	ctx := context.Background()
	counted := &countingRuns{Local: NewLocal(root)}
	changes, err := PlanPreview(ctx, counted, Drivers(), []config.Resource{r})
	if err != nil || len(changes) != 1 {
		t.Fatalf("preview: %+v, %v", changes, err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the preview ran the unless guard")
	}
	if !strings.Contains(changes[0].Diff, "not evaluated") || changes[0].Before.Fields["unless"] != unevaluated {
		t.Fatalf("preview diff %q, state %+v", changes[0].Diff, changes[0].Before)
	}
	changes, err = PlanHost(ctx, counted, Drivers(), []config.Resource{r})
	if err != nil || len(changes) != 1 || changes[0].Before.Fields["unless"] != "3" || changes[0].Before.Fields["creates"] != "no" {
		t.Fatalf("plan: %+v, %v", changes, err)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatalf("the trusted plan did not run the unless guard: %v", err)
	}
	if counted.runs != 0 {
		t.Fatalf("observing the command ran %d shell scripts through the transport, want 0", counted.runs)
	}
}

// countingRuns is the local transport counting the scripts it runs.
type countingRuns struct {
	*Local
	runs int
}

func (c *countingRuns) Run(ctx context.Context, script string, stdin []byte) (Result, error) {
	c.runs++
	return c.Local.Run(ctx, script, stdin)
}

func TestCommandFailure(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	r := cmdRes("broken", CommandSpec{Run: "echo 'disk on fire' >&2; exit 4", Creates: "/never"})
	c := expectChange(t, l, r, Create)
	err := Drivers()["command"].Apply(context.Background(), l, r, c.Before)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "exit 4") || !strings.Contains(err.Error(), "command:broken") {
		t.Fatalf("got %v, want the exit status, stderr and resource in the error", err)
	}
}

func TestCommandWithoutGuardAlwaysRuns(t *testing.T) {
	l := NewLocal(t.TempDir())
	r := cmdRes("always", CommandSpec{Run: "true"})
	expectChange(t, l, r, Create, "no guard")
}

func TestCommandEmptyRun(t *testing.T) {
	l := NewLocal(t.TempDir())
	r := cmdRes("empty", CommandSpec{Run: "  ", Creates: "/x"})
	c := expectChange(t, l, r, Create)
	if err := Drivers()["command"].Apply(context.Background(), l, r, c.Before); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Fatalf("got %v, want a 'no command' error", err)
	}
}
