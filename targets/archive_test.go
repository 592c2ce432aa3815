package targets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
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
