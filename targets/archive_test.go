package targets

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// checkUnpacked asserts the invariants of an unpacked archive: only
// folders, regular files and links, every link relative and staying
// inside, no mode bits beyond the permissions.
func checkUnpacked(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if j := path.Join(path.Dir(filepath.ToSlash(rel)), link); path.IsAbs(link) || j == ".." || strings.HasPrefix(j, "../") {
				t.Fatalf("escaping symlink %q -> %q unpacked", rel, link)
			}
			// Through the other links too, as the kernel resolves it.
			if to, err := filepath.EvalSymlinks(p); err == nil && to != root && !strings.HasPrefix(to, root+"/") {
				t.Fatalf("symlink %q -> %q resolves to %s, outside %s", rel, link, to, root)
			}
		case m.IsDir(), m.IsRegular():
			if m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Fatalf("entry %q keeps mode bits %v", rel, m)
			}
		default:
			t.Fatalf("entry %q of mode %v unpacked", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fuzzUnpack(f *testing.F, format string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := filepath.Join(t.TempDir(), "u")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		x := &extractor{ctx: context.Background(), root: root}
		err := checkArchive(bytes.NewReader(data), int64(len(data)), format, 1<<20, x)
		if err == nil {
			err = x.finish()
		}
		if err == nil {
			checkUnpacked(t, root)
		}
	})
}

// FuzzUnpackTarGz throws arbitrary bytes at the host's tar.gz unpack: it
// must never panic, and whatever it unpacks stays inside its folder.
func FuzzUnpackTarGz(f *testing.F) {
	fuzzUnpack(f, FormatTarGz,
		srvTarGz(f, []srvEntry{{name: "a/b", body: "x"}, {name: "l", link: "a/b", typ: tar.TypeSymlink}}),
		srvTarGz(f, []srvEntry{{name: "../x", body: "x"}}),
		srvTarGz(f, []srvEntry{{name: "h", body: "x"}, {name: "g", link: "h", typ: tar.TypeLink}}))
}

// FuzzUnpackZip does the same for zip archives.
func FuzzUnpackZip(f *testing.F) {
	fuzzUnpack(f, FormatZip,
		srvZip(f, []srvEntry{{name: "a/", typ: tar.TypeDir}, {name: "a/b", body: "x"}, {name: "l", link: "a", typ: tar.TypeSymlink}}),
		srvZip(f, []srvEntry{{name: "/abs", body: "x"}}))
}

// TestArchiveLinkChains checks links that each stay inside on their own
// but, through the archive's other links, lead out ("y -> ." makes
// "x -> y/.." the destination's parent): the daemon's check and the
// host's unpack refuse them, in tar.gz and in zip, whatever the entries'
// order. Ordinary relative links are accepted, and every link the host
// unpacks resolves, on disk, inside its folder.
func TestArchiveLinkChains(t *testing.T) {
	link := func(name, to string) srvEntry { return srvEntry{name: name, link: to, typ: tar.TypeSymlink} }
	file := func(name string) srvEntry { return srvEntry{name: name, body: "x"} }
	cases := []struct {
		name    string
		entries []srvEntry
		want    string // "" for accepted
	}{
		{"dot then up", []srvEntry{link("y", "."), link("x", "y/..")}, "outside the destination"},
		{"up then dot", []srvEntry{link("x", "y/.."), link("y", ".")}, "outside the destination"},
		{"further up", []srvEntry{link("y", "."), link("x", "y/y/y/../../..")}, "outside the destination"},
		{"from a subfolder", []srvEntry{link("y", "."), file("d/f"), link("d/l", "../y/y/../..")}, "outside the destination"},
		{"through a deeper link", []srvEntry{file("a/b/f"), link("a/b/up2", "../.."), link("x", "a/b/up2/..")}, "outside the destination"},
		{"two links deep", []srvEntry{file("a/b/f"), link("a/b/up2", "../.."), link("m", "a/b/up2"), link("n", "m/a/b/up2/m/..")}, "outside the destination"},
		{"loop", []srvEntry{link("a", "b"), link("b", "a")}, "loop"},
		{"library links", []srvEntry{file("lib/libfoo.so.1"), link("lib/libfoo.so", "libfoo.so.1"), file("lib/tool"), link("bin/tool", "../lib/tool")}, ""},
		{"self link used inside", []srvEntry{link("usr", "."), file("bin/sh"), link("sbin/sh", "../usr/bin/sh")}, ""},
		{"chain staying inside", []srvEntry{file("d/e/f"), link("a", "d/e"), link("b", "a/.."), link("c", "b/e/f")}, ""},
		{"up to the top", []srvEntry{file("a/b/f"), link("a/b/up2", "../.."), link("x", "a/b/up2/a")}, ""},
		{"dangling inside", []srvEntry{link("l", "nope/x"), link("y", "."), link("m", "y/nope")}, ""},
	}
	for _, tc := range cases {
		for _, format := range []string{FormatTarGz, FormatZip} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				a := srvTarGz(t, tc.entries)
				if format == FormatZip {
					a = srvZip(t, tc.entries)
				}
				err := checkArchive(bytes.NewReader(a), int64(len(a)), format, 1<<20, discardEntries{})
				checkRefusal(t, "daemon check", err, tc.want)
				root := filepath.Join(t.TempDir(), "u")
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				x := &extractor{ctx: context.Background(), root: root}
				err = checkArchive(bytes.NewReader(a), int64(len(a)), format, 1<<20, x)
				checkRefusal(t, "host unpack", err, tc.want)
				if err == nil {
					checkUnpacked(t, root)
				}
			})
		}
	}
}

func checkRefusal(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s refused an archive that stays inside: %v", what, err)
	case want != "" && (!errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), want)):
		t.Fatalf("%s: error = %v, want one saying %q", what, err, want)
	}
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
		{name: "symlink chain out", file: "a.zip", archive: srvZip(t, []srvEntry{{name: "y", link: ".", typ: tar.TypeSymlink}, {name: "x", link: "y/..", typ: tar.TypeSymlink}}), want: "outside the destination"},
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

// BenchmarkCheckArchive measures the daemon-side check of a 32 MiB
// tar.gz of 256 files: the cost paid once per artifact version.
func BenchmarkCheckArchive(b *testing.B) {
	var entries []srvEntry
	chunk := strings.Repeat("driftless artifact payload line\n", 4096) // 128 KiB, compressible like code
	for i := 0; i < 256; i++ {
		entries = append(entries, srvEntry{name: "lib/f" + strconv.Itoa(i), body: chunk})
	}
	a := srvTarGz(b, entries)
	b.SetBytes(int64(256 * len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := checkArchive(bytes.NewReader(a), int64(len(a)), FormatTarGz, DefaultArtifactMaxBytes, discardEntries{}); err != nil {
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
