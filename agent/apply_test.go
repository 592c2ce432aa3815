package agent_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// tarGz builds a tar.gz of entries: a regular file per name and body, or
// a symbolic link when the body starts with "->".
func tarGz(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for i := 0; i < len(entries); i += 2 {
		h := &tar.Header{Name: entries[i], Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(entries[i+1]))}
		if target, ok := strings.CutPrefix(entries[i+1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(entries[i+1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// listing lists everything under root: names, modes, file sizes, links.
func listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0
		}
		link, _ := os.Readlink(p)
		fmt.Fprintf(&b, "%s %v %d %s\n", strings.TrimPrefix(p, root), fi.Mode(), size, link)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestApplyArchiveOverProtocol serves the agent's protocol over pipes, as
// `driftless agent` serves its SSH session, and sends it artifact steps
// with their archives as the daemon's client sends them (after the
// request line). An archive that does not match its declared sha256 (cut
// in half) and one that matches but holds a link out of its folder are
// refused, and nothing on the host changes; the archives of steps not run
// are read all the same, so the session stays usable; two steps with an
// archive each are both unpacked, each from its own bytes.
func TestApplyArchiveOverProtocol(t *testing.T) {
	ctx := context.Background()
	c := servedClient(t)

	root := t.TempDir()
	dir := filepath.Join(root, "app")
	step := func(archive []byte, declared string) targets.Step {
		return targets.Step{
			Op:       targets.StepApply,
			Resource: config.Resource{Kind: "artifact", Name: dir, Spec: &targets.ArtifactSpec{URL: "https://a.example/app.tar.gz", SHA256: declared}},
			Archive:  io.NewSectionReader(bytes.NewReader(archive), 0, int64(len(archive))),
		}
	}
	v1 := tarGz(t, "bin/app", "v1", "run", "->bin/app")
	v2 := tarGz(t, "bin/app", strings.Repeat("v2", 1<<18))
	v3 := tarGz(t, "bin/app", "v3")
	out := tarGz(t, "ok", "x", "etc", "->../../../etc")
	current := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "current/bin/app"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if n, err := c.Apply(ctx, []targets.Step{step(v1, sum(v1))}); n != 1 || err != nil {
		t.Fatalf("apply v1 = %d, %v", n, err)
	}
	if got := current(); got != "v1" {
		t.Fatalf("current/bin/app = %q, want v1", got)
	}
	before := listing(t, root)
	for _, tc := range []struct {
		name  string
		steps []targets.Step
		want  string
	}{
		{"cut in half", []targets.Step{step(v2[:len(v2)/2], sum(v2)), step(v3, sum(v3))}, "sha256 mismatch"},
		{"link out", []targets.Step{step(out, sum(out)), step(v3, sum(v3))}, "outside the destination"},
	} {
		n, err := c.Apply(ctx, tc.steps)
		if n != 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: apply = %d, %v; want it refused saying %q", tc.name, n, err, tc.want)
		}
		if after := listing(t, root); after != before {
			t.Fatalf("%s: a refused archive changed the host:\n%s\nwas:\n%s", tc.name, after, before)
		}
	}
	if n, err := c.Apply(ctx, []targets.Step{step(v2, sum(v2)), step(v3, sum(v3))}); n != 2 || err != nil {
		t.Fatalf("apply v2 then v3 = %d, %v", n, err)
	}
	if got := current(); got != "v3" {
		t.Fatalf("current/bin/app = %q, want v3", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "releases", sum(v2)[:12], "bin/app"))
	if err != nil || string(b) != strings.Repeat("v2", 1<<18) {
		t.Fatalf("release v2 holds %d bytes (%v), want its archive's", len(b), err)
	}
}
