package targets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// checkNormalised asserts the invariants of a normalised stream: every name
// is relative without "..", and every link stays inside.
func checkNormalised(t *testing.T, out []byte) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("normalised stream is not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("normalised stream is not a tar: %v", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if path.IsAbs(name) || name != path.Clean(name) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("unsafe name %q accepted", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			if j := path.Join(path.Dir(name), h.Linkname); path.IsAbs(h.Linkname) || j == ".." || strings.HasPrefix(j, "../") {
				t.Fatalf("escaping symlink %q -> %q accepted", name, h.Linkname)
			}
		case tar.TypeLink:
			if path.IsAbs(h.Linkname) || strings.HasPrefix(path.Clean(h.Linkname), "..") {
				t.Fatalf("escaping hard link %q -> %q accepted", name, h.Linkname)
			}
		case tar.TypeReg, tar.TypeDir:
		default:
			t.Fatalf("entry %q of type %q accepted", name, h.Typeflag)
		}
		if h.Mode&^0o777 != 0 {
			t.Fatalf("entry %q keeps mode bits %o", name, h.Mode)
		}
	}
}

func fuzzNormalise(f *testing.F, format string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		out, err := normaliseArchive(fh, format, 1<<20)
		if err == nil {
			checkNormalised(t, out)
		}
	})
}

// FuzzNormaliseTarGz throws arbitrary bytes at the tar.gz checker: it must
// never panic, and whatever it accepts must be safe to unpack.
func FuzzNormaliseTarGz(f *testing.F) {
	fuzzNormalise(f, FormatTarGz,
		srvTarGz(f, []srvEntry{{name: "a/b", body: "x"}, {name: "l", link: "a/b", typ: tar.TypeSymlink}}),
		srvTarGz(f, []srvEntry{{name: "../x", body: "x"}}),
		srvTarGz(f, []srvEntry{{name: "h", body: "x"}, {name: "g", link: "h", typ: tar.TypeLink}}))
}

// FuzzNormaliseZip does the same for zip archives.
func FuzzNormaliseZip(f *testing.F) {
	fuzzNormalise(f, FormatZip,
		srvZip(f, []srvEntry{{name: "a/", typ: tar.TypeDir}, {name: "a/b", body: "x"}, {name: "l", link: "a", typ: tar.TypeSymlink}}),
		srvZip(f, []srvEntry{{name: "/abs", body: "x"}}))
}

// TestArchiveFormat guesses formats from the declaration, the URL and the bytes.
func TestArchiveFormat(t *testing.T) {
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar")
	cases := []struct {
		declared, url string
		head          []byte
		want          string
	}{
		{"zip", "http://x/a.tar.gz", nil, FormatZip},
		{"tgz", "http://x/a", nil, FormatTarGz},
		{"", "http://x/a.TGZ?token=1", nil, FormatTarGz},
		{"", "file:///a.tar", nil, FormatTar},
		{"", "http://x/a.zip#frag", nil, FormatZip},
		{"", "http://x/download", []byte{0x1f, 0x8b, 8}, FormatTarGz},
		{"", "http://x/download", []byte("PK\x03\x04rest"), FormatZip},
		{"", "http://x/download", tarHead, FormatTar},
		{"", "http://x/download", []byte("plain"), ""},
		{"rar", "http://x/a.rar", nil, ""},
	}
	for _, tc := range cases {
		got, err := archiveFormat(tc.declared, tc.url, tc.head)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("archiveFormat(%q, %q) = %q, %v; want %q", tc.declared, tc.url, got, err, tc.want)
		}
	}
}

// TestArtifactRefused feeds hostile and broken artifacts: each is refused
// with a clear error and nothing at all appears on the host.
func TestArtifactRefused(t *testing.T) {
	good := srvTarGz(t, []srvEntry{{name: "ok", body: "fine"}})
	cases := []struct {
		name    string
		archive []byte
		file    string
		sum     string // "" means the archive's own
		max     int64
		want    string
	}{
		{name: "absolute path", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "ok", body: "x"}, {name: "/etc/evil", body: "x"}}), want: "absolute path"},
		{name: "dotdot", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "a/../../evil", body: "x"}}), want: ".. component"},
		{name: "escaping symlink", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "d/l", link: "../../etc", typ: tar.TypeSymlink}}), want: "outside the destination"},
		{name: "absolute symlink", file: "a.zip", archive: srvZip(t, []srvEntry{{name: "l", link: "/etc/passwd", typ: tar.TypeSymlink}}), want: "outside the destination"},
		{name: "write through symlink", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "l", link: ".", typ: tar.TypeSymlink}, {name: "l/x", body: "x"}}), want: "not a directory"},
		{name: "escaping hard link", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "h", link: "../etc/shadow", typ: tar.TypeLink}}), want: "hard link"},
		{name: "zip dotdot", file: "a.zip", archive: srvZip(t, []srvEntry{{name: "../evil", body: "x"}}), want: ".. component"},
		{name: "device", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "dev", typ: tar.TypeChar}}), want: "unsupported type"},
		{name: "symlink over an implicit folder", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "d/f", body: "1"}, {name: "d", link: "e", typ: tar.TypeSymlink}}), want: "appears twice"},
		{name: "file over an implicit folder", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "d/f", body: "1"}, {name: "d", body: "2"}}), want: "appears twice"},
		{name: "duplicate", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "f", body: "1"}, {name: "f", body: "2"}}), want: "appears twice"},
		{name: "wrong sha256", file: "a.tar.gz", archive: good, sum: srvSum([]byte("other")), want: "sha256 mismatch"},
		{name: "too large", file: "a.tar.gz", archive: srvTarGz(t, []srvEntry{{name: "big", body: strings.Repeat("z", 4096)}}), max: 1024, want: "exceeds"},
		{name: "not an archive", file: "a.tar.gz", archive: []byte("hello"), want: "gzip"},
		{name: "missing", file: "nope.tar.gz", archive: good, want: "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newArtifactServer(t, map[string][]byte{"a.tar.gz": tc.archive, "a.zip": tc.archive})
			root := t.TempDir()
			tr := NewLocal(root)
			d := &ArtifactDriver{TempDir: t.TempDir(), MaxBytes: tc.max}
			sum := tc.sum
			if sum == "" {
				sum = srvSum(tc.archive)
			}
			r := artifactRes("/opt/x", srv.URL+"/"+tc.file, sum, 0)
			_, err := srvConverge(t, tr, d, r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one saying %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Fatalf("a refused artifact left %v on the host", ents)
			}
			if ents, _ := os.ReadDir(d.TempDir); len(ents) != 0 {
				t.Fatalf("a refused artifact left %v in the download folder", ents)
			}
		})
	}
}

// BenchmarkNormaliseArchive measures the daemon-side check and rewrite of
// a 32 MiB tar.gz of 256 files: the cost paid once per artifact version.
func BenchmarkNormaliseArchive(b *testing.B) {
	var entries []srvEntry
	chunk := strings.Repeat("driftless artifact payload line\n", 4096) // 128 KiB, compressible like code
	for i := 0; i < 256; i++ {
		entries = append(entries, srvEntry{name: "lib/f" + strconv.Itoa(i), body: chunk})
	}
	a := srvTarGz(b, entries)
	p := filepath.Join(b.TempDir(), "a.tar.gz")
	if err := os.WriteFile(p, a, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(256 * len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := normaliseArchive(f, FormatTarGz, DefaultArtifactMaxBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArtifactSwitch measures switching current between two releases
// already on a (local) host: what a rollback costs.
func BenchmarkArtifactSwitch(b *testing.B) {
	root := b.TempDir()
	tr := NewLocal(root)
	d := &ArtifactDriver{TempDir: b.TempDir()}
	var rs []config.Resource
	files := map[string][]byte{}
	srv := newArtifactServer(b, files)
	for i := 0; i < 2; i++ {
		a := srvTarGz(b, []srvEntry{{name: "v", body: strconv.Itoa(i)}})
		files[strconv.Itoa(i)+".tar.gz"] = a
		r := artifactRes("/opt/b", srv.URL+"/"+strconv.Itoa(i)+".tar.gz", srvSum(a), 0)
		if err := d.Apply(context.Background(), tr, r, State{}); err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
	}
	states, err := Observe(context.Background(), tr, Drivers(), rs[:1])
	if err != nil {
		b.Fatal(err)
	}
	st := states[rs[0].ID()]
	for i := 0; b.Loop(); i++ {
		if err := d.Apply(context.Background(), tr, rs[i%2], st); err != nil {
			b.Fatal(err)
		}
	}
}
