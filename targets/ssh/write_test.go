package ssh_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// TestWriteFiles writes a batch of files in one session: contents, modes
// and owners as given. A batch whose fourth file cannot be written (its
// folder is missing) writes the three before it, leaves the others as they
// were, reports three, and leaves no temporary file.
func TestWriteFiles(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("writes")
	tr := dial(t, lab, h, nil)
	ctx := context.Background()
	h.MustExec(t, "mkdir -p /srv/w /srv/x && echo old > /srv/w/f3")
	var files []targets.FileWrite
	for i := range 8 {
		f := targets.FileWrite{Path: fmt.Sprintf("/srv/%s/f%d", []string{"w", "x"}[i%2], i), Data: []byte(fmt.Sprintf("file %d\n\x00", i)), Mode: 0o640}
		if i%2 == 1 {
			f.Owner, f.Group, f.Mode = "nobody", "nogroup", 0o600
		}
		files = append(files, f)
	}
	files[2].Owner = "65534"
	before := tr.RoundTrips()
	n, err := tr.WriteFiles(ctx, files)
	if err != nil || n != len(files) {
		t.Fatalf("WriteFiles = %d, %v", n, err)
	}
	if got := tr.RoundTrips() - before; got != 1 {
		t.Fatalf("%d files took %d round trips, want 1", len(files), got)
	}
	for i, f := range files {
		out := h.MustExec(t, "stat -c '%a %u:%g' "+f.Path)
		want := "640 0:0\n"
		switch {
		case i == 2:
			want = "640 65534:0\n"
		case i%2 == 1:
			want = "600 65534:65534\n"
		}
		got, err := os.ReadFile(filepath.Join(h.Root, f.Path))
		if err != nil || !bytes.Equal(got, f.Data) || out != want {
			t.Errorf("%s: %q %v, %q; want %q %q", f.Path, got, err, out, f.Data, want)
		}
	}

	h.MustExec(t, "echo kept > /srv/w/f4")
	for i := range files {
		files[i].Data = []byte("second\n")
	}
	files[3].Path = "/srv/missing/f3"
	n, err = tr.WriteFiles(ctx, files)
	if n != 3 || err == nil || !strings.Contains(err.Error(), "/srv/missing/f3") {
		t.Fatalf("a batch failing at its fourth file: %d, %v", n, err)
	}
	for i, f := range files {
		want := "second\n"
		switch {
		case i == 3:
			continue
		case i == 4:
			want = "kept\n"
		case i > 4:
			want = fmt.Sprintf("file %d\n\x00", i)
		}
		if got, _ := os.ReadFile(filepath.Join(h.Root, f.Path)); string(got) != want {
			t.Errorf("%s after the failed batch: %q, want %q", f.Path, got, want)
		}
	}
	if out := h.MustExec(t, "ls -A /srv/w /srv/x | grep driftless || true"); out != "" {
		t.Errorf("temporary files left: %s", out)
	}
}
