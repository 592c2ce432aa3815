package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// countingTransport is the local transport counting its native
// observations and the bytes of their answers.
type countingTransport struct {
	*Local
	observes int
	received int
}

func (c *countingTransport) ObserveNative(ctx context.Context, qs []Query) ([]Answer, error) {
	c.observes++
	as, err := c.Local.ObserveNative(ctx, qs)
	for _, a := range as {
		c.received += len(a.Out)
	}
	return as, err
}

func fileRes(name string, spec FileSpec) config.Resource {
	return config.Resource{Kind: "file", Name: name, Spec: &spec}
}

func TestObserveOneRun(t *testing.T) {
	root := t.TempDir()
	ct := &countingTransport{Local: NewLocal(root)}
	var rs []config.Resource
	for i := range 50 {
		name := fmt.Sprintf("/f%d", i)
		if i%2 == 0 {
			writeTestFile(t, root, name, fmt.Sprintf("content %d\n", i), 0o640)
		}
		rs = append(rs, fileRes(name, FileSpec{Content: "x"}))
	}
	rs = append(rs,
		config.Resource{Kind: "directory", Name: "/d", Spec: &DirectorySpec{}},
		config.Resource{Kind: "symlink", Name: "/l", Spec: &SymlinkSpec{Target: "/f0"}},
		config.Resource{Kind: "env", Name: "/e", Spec: &EnvSpec{}},
		config.Resource{Kind: "command", Name: "c", Spec: &CommandSpec{Run: "true", Creates: "/f0"}},
	)
	states, err := Observe(context.Background(), ct, Drivers(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if ct.observes != 1 {
		t.Fatalf("Observe made %d native observations for %d resources, want 1", ct.observes, len(rs))
	}
	if len(states) != len(rs) {
		t.Fatalf("got %d states, want %d", len(states), len(rs))
	}
	for i := range 50 {
		st := states[fmt.Sprintf("file:/f%d", i)]
		if i%2 == 1 {
			if st.Present {
				t.Fatalf("f%d: present, was never written", i)
			}
			continue
		}
		want := fmt.Sprintf("content %d\n", i)
		if !st.Present || string(st.Content) != want || st.Fields["mode"] != "0640" || st.Fields["type"] != "file" {
			t.Fatalf("f%d: got %+v, want %q mode 0640", i, st, want)
		}
	}
	if !states["command:c"].Present {
		t.Fatal("command guard: /f0 exists, the command's effect should be present")
	}
}

func TestObserveErrors(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	ctx := context.Background()
	writeTestFile(t, root, "/ok", "fine", 0o644)
	rs := []config.Resource{
		fileRes("/ok", FileSpec{}),
		fileRes("relative/path", FileSpec{}),
		{Kind: "file", Name: "/nospec"},
		fileRes("/also-ok", FileSpec{}),
	}
	states, err := Observe(ctx, l, Drivers(), rs)
	if err == nil {
		t.Fatal("no error for a relative path and a missing spec")
	}
	var oe *ObserveError
	if !errors.As(err, &oe) || oe.ID != "file:relative/path" || !strings.Contains(err.Error(), "must be absolute") {
		t.Fatalf("error %v does not name the relative path's resource", err)
	}
	if !strings.Contains(err.Error(), "file:/nospec") {
		t.Fatalf("error %v does not name the resource without a spec", err)
	}
	if !states["file:/ok"].Present || states["file:/also-ok"].Present || len(states) != 2 {
		t.Fatalf("the good resources were not observed around the bad ones: %+v", states)
	}

	if _, err := Observe(ctx, l, Drivers(), []config.Resource{{Kind: "nope", Name: "x"}}); err == nil || !strings.Contains(err.Error(), `no driver for kind "nope"`) {
		t.Fatalf("got %v for an unknown kind", err)
	}
	dup := []config.Resource{fileRes("/a", FileSpec{}), fileRes("/a", FileSpec{})}
	if _, err := Observe(ctx, l, Drivers(), dup); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Fatalf("got %v for a duplicate", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Observe(cctx, l, Drivers(), rs[:1]); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v with a cancelled context", err)
	}
}

// TestObserveManyResources observes 1,500 resources in one native
// observation.
func TestObserveManyResources(t *testing.T) {
	root := t.TempDir()
	ct := &countingTransport{Local: NewLocal(root)}
	writeTestFile(t, root, "/present", "here", 0o644)
	var rs []config.Resource
	for i := range 1500 {
		rs = append(rs, fileRes(fmt.Sprintf("/a/rather/long/path/to/make/the/script/longer/file-%04d.conf", i), FileSpec{}))
	}
	rs = append(rs, fileRes("/present", FileSpec{}))
	states, err := Observe(context.Background(), ct, Drivers(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if ct.observes != 1 || len(states) != len(rs) || string(states["file:/present"].Content) != "here" {
		t.Fatalf("%d observations, %d states, last %+v", ct.observes, len(states), states["file:/present"])
	}
}

// BenchmarkObserve200Files observes 200 existing files in one call on the
// local transport.
func BenchmarkObserve200Files(b *testing.B) {
	root := b.TempDir()
	var rs []config.Resource
	for i := range 200 {
		name := fmt.Sprintf("/f%03d", i)
		if err := os.WriteFile(filepath.Join(root, name), []byte(strings.Repeat("line of config\n", 20)), 0o644); err != nil {
			b.Fatal(err)
		}
		rs = append(rs, fileRes(name, FileSpec{Content: "x"}))
	}
	l, drivers := NewLocal(root), Drivers()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Observe(context.Background(), l, drivers, rs); err != nil {
			b.Fatal(err)
		}
	}
}

// writeTestFile writes a file under root, behind the drivers' backs.
func writeTestFile(t testing.TB, root, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// plan runs PlanHost and fails the test on an error.
func plan(t *testing.T, tr Transport, rs ...config.Resource) []Change {
	t.Helper()
	changes, err := PlanHost(context.Background(), tr, Drivers(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != len(rs) {
		t.Fatalf("got %d changes for %d resources", len(changes), len(rs))
	}
	return changes
}

// converge plans rs, applies every change, and checks the next pass is a
// no-op. It returns the applied pass's changes (their Before are the
// snapshots).
func converge(t *testing.T, tr Transport, rs ...config.Resource) []Change {
	t.Helper()
	changes := plan(t, tr, rs...)
	drivers := Drivers()
	for i, c := range changes {
		if c.Action == NoChange {
			continue
		}
		if err := drivers[c.Kind].Apply(context.Background(), tr, rs[i], c.Before); err != nil {
			t.Fatalf("apply %s: %v", c.ID, err)
		}
	}
	assertNoop(t, tr, rs...)
	return changes
}

// assertNoop checks that a pass over rs finds nothing to change.
func assertNoop(t *testing.T, tr Transport, rs ...config.Resource) {
	t.Helper()
	for _, c := range plan(t, tr, rs...) {
		if c.Action != NoChange {
			t.Fatalf("%s: not converged: %s\n%s", c.ID, c.Action, c.Diff)
		}
	}
}

// restore puts back the snapshots of changes in reverse order.
func restore(t *testing.T, tr Transport, rs []config.Resource, changes []Change) {
	t.Helper()
	drivers := Drivers()
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Action == NoChange {
			continue
		}
		if err := drivers[c.Kind].Restore(context.Background(), tr, rs[i], c.Before); err != nil {
			t.Fatalf("restore %s: %v", c.ID, err)
		}
	}
}

// expectChange plans one resource and checks the action and that the diff
// holds every wanted fragment.
func expectChange(t *testing.T, tr Transport, r config.Resource, want Action, fragments ...string) Change {
	t.Helper()
	c := plan(t, tr, r)[0]
	if c.Action != want {
		t.Fatalf("%s: action %s, want %s\n%s", c.ID, c.Action, want, c.Diff)
	}
	for _, f := range fragments {
		if !strings.Contains(c.Diff, f) {
			t.Fatalf("%s: diff lacks %q:\n%s", c.ID, f, c.Diff)
		}
	}
	return c
}

// A resource of a kind that is not observed natively is reported, not
// silently skipped; a transport that does not observe natively fails the
// whole observation.
func TestObserveKindWithoutQuery(t *testing.T) {
	drivers := map[string]Driver{"opaque": struct{ Driver }{&FileDriver{}}, "file": &FileDriver{}}
	r := config.Resource{Kind: "opaque", Name: "/etc/x"}
	states, err := Observe(context.Background(), NewLocal(t.TempDir()), drivers, []config.Resource{r})
	var oe *ObserveError
	if !errors.As(err, &oe) || oe.ID != r.ID() || !strings.Contains(err.Error(), `kind "opaque" is not observed natively`) {
		t.Fatalf("error %v, want an ObserveError for %s", err, r.ID())
	}
	if _, ok := states[r.ID()]; ok {
		t.Fatalf("%s observed: %+v", r.ID(), states[r.ID()])
	}
	shellOnly := struct{ Transport }{NewLocal(t.TempDir())}
	f := fileRes("/etc/x", FileSpec{})
	if _, err := Observe(context.Background(), shellOnly, drivers, []config.Resource{f}); err == nil || !strings.Contains(err.Error(), "does not observe natively") {
		t.Fatalf("a transport without native observation: %v", err)
	}
}
