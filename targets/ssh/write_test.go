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

// TestWriteFilesProcesses counts the processes a write starts on the host
// (the pid namespace's last pid moves by one per fork): starting a process
// is most of what a write costs a host, so a file more in a batch may
// start at most two (its head and its mv), not one per step.
func TestWriteFilesProcesses(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("forks")
	tr := dial(t, lab, h, nil)
	ctx := context.Background()
	h.MustExec(t, "mkdir -p /srv/p")
	lastPid := func() int {
		var pid int
		if _, err := fmt.Sscan(h.MustExec(t, "cat /proc/sys/kernel/ns_last_pid"), &pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// Reading the counter starts processes of its own; so does a batch of
	// one file. The difference a batch of 11 makes is the cost of 10 files.
	forks := func(n int) int {
		var files []targets.FileWrite
		for i := range n {
			files = append(files, targets.FileWrite{Path: fmt.Sprintf("/srv/p/f%d", i), Data: []byte("x\n"), Mode: 0o640, Owner: "nobody"})
		}
		before := lastPid()
		if got, err := tr.WriteFiles(ctx, files); err != nil || got != n {
			t.Fatalf("WriteFiles(%d files) = %d, %v", n, got, err)
		}
		return lastPid() - before
	}
	one, eleven := forks(1), forks(11)
	if per := float64(eleven-one) / 10; per > 2 {
		t.Fatalf("a write of 1 file started %d processes, of 11 files %d: %.1f per file, want at most 2", one, eleven, per)
	}
	t.Logf("processes started: %d for 1 file, %d for 11 files", one, eleven)
}

// TestWriteFilesOwnerFails gives the third of four files an owner the host
// does not know: the owners are set in one chown for the batch, and when it
// fails the file at fault is still found. The two files before it are
// written, the error names it with chown's reason, the last two are left
// as they were, and no temporary file stays.
func TestWriteFilesOwnerFails(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("owner-fails")
	tr := dial(t, lab, h, nil)
	h.MustExec(t, "mkdir -p /srv/o && for i in 0 1 2 3; do echo old > /srv/o/f$i; done")
	var files []targets.FileWrite
	for i := range 4 {
		files = append(files, targets.FileWrite{Path: fmt.Sprintf("/srv/o/f%d", i), Data: []byte("new\n"), Mode: 0o644, Owner: "nobody"})
	}
	files[2].Owner = "no-such-user"
	n, err := tr.WriteFiles(context.Background(), files)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "/srv/o/f2") || !strings.Contains(err.Error(), "no-such-user") {
		t.Fatalf("WriteFiles = %d, %v; want 2 and an error naming /srv/o/f2 and its owner", n, err)
	}
	for i, want := range []string{"new\n", "new\n", "old\n", "old\n"} {
		if got, _ := os.ReadFile(filepath.Join(h.Root, files[i].Path)); string(got) != want {
			t.Errorf("%s: %q, want %q", files[i].Path, got, want)
		}
	}
	if out := h.MustExec(t, "stat -c %U /srv/o/f0 /srv/o/f1"); out != "nobody\nnobody\n" {
		t.Errorf("owners of the written files: %q", out)
	}
	if out := h.MustExec(t, "ls -A /srv/o | grep driftless || true"); out != "" {
		t.Errorf("temporary files left: %s", out)
	}
}
