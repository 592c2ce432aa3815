package targets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// srvTar builds an uncompressed tar of entries: the tar.gz of srvTarGz,
// unzipped, so both formats carry exactly the same entries.
func srvTar(t testing.TB, entries []srvEntry) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(srvTarGz(t, entries)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArtifactPlainTar deploys an uncompressed tar, once named .tar and
// once from a URL without an extension (recognised by its bytes), and
// restores the host to having nothing.
func TestArtifactPlainTar(t *testing.T) {
	v1 := srvTar(t, []srvEntry{{name: "bin/app", body: "tar-v1"}, {name: "run", link: "bin/app", typ: tar.TypeSymlink}})
	v2 := srvTar(t, []srvEntry{{name: "bin/app", body: "tar-v2"}})
	srv := newArtifactServer(t, map[string][]byte{"app-1.tar": v1, "download": v2})
	root := t.TempDir()
	tr := NewLocal(root)
	d := &ArtifactDriver{TempDir: t.TempDir()}
	dir := filepath.Join(root, "opt/app")

	r1 := artifactRes("/opt/app", srv.URL+"/app-1.tar", srvSum(v1), 0)
	before := srvObserve(t, tr, d, r1)
	srvMustConverge(t, tr, d, r1, Create)
	if got := readCurrent(t, dir, "run"); got != "tar-v1" {
		t.Fatalf("current/run = %q, want tar-v1", got)
	}
	r2 := artifactRes("/opt/app", srv.URL+"/download", srvSum(v2), 0)
	srvMustConverge(t, tr, d, r2, Update)
	if got := readCurrent(t, dir, "bin/app"); got != "tar-v2" {
		t.Fatalf("current/bin/app = %q, want tar-v2", got)
	}
	if err := d.Restore(context.Background(), tr, r2, before); err != nil {
		t.Fatalf("restore to nothing: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore to nothing left %s behind (%v)", dir, err)
	}
}

// TestArtifactPlainTarRefused gives the uncompressed tar reader the same
// hostile entries as the tar.gz one: each is refused, nothing is extracted.
func TestArtifactPlainTarRefused(t *testing.T) {
	cases := []struct {
		name    string
		entries []srvEntry
		want    string
	}{
		{"absolute path", []srvEntry{{name: "ok", body: "x"}, {name: "/etc/evil", body: "x"}}, "absolute path"},
		{"dotdot", []srvEntry{{name: "a/../../evil", body: "x"}}, ".. component"},
		{"escaping symlink", []srvEntry{{name: "d/l", link: "../../etc", typ: tar.TypeSymlink}}, "outside the destination"},
		{"escaping hard link", []srvEntry{{name: "h", link: "../etc/shadow", typ: tar.TypeLink}}, "hard link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := srvTar(t, tc.entries)
			srv := newArtifactServer(t, map[string][]byte{"a.tar": a})
			root := t.TempDir()
			d := &ArtifactDriver{TempDir: t.TempDir()}
			_, err := srvConverge(t, NewLocal(root), d, artifactRes("/opt/x", srv.URL+"/a.tar", srvSum(a), 0))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one saying %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Fatalf("a refused artifact left %v on the host", ents)
			}
		})
	}
}

// TestArtifactSHA256Mandatory refuses an artifact declared without a
// sha256 before anything is downloaded or written.
func TestArtifactSHA256Mandatory(t *testing.T) {
	a := srvTarGz(t, []srvEntry{{name: "f", body: "x"}})
	srv := newArtifactServer(t, map[string][]byte{"a.tar.gz": a})
	root := t.TempDir()
	d := &ArtifactDriver{TempDir: t.TempDir()}
	_, err := srvConverge(t, NewLocal(root), d, artifactRes("/opt/x", srv.URL+"/a.tar.gz", "", 0))
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("error = %v, want one about the missing sha256", err)
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("an artifact without a sha256 was downloaded %d times", n)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("an artifact without a sha256 left %v on the host", ents)
	}
}

// TestArtifactURLPasswordHidden keeps the credentials of an artifact URL
// out of every error: a refused download, a wrong sha256, a server that is
// not there and an archive that fails its check, with the secret as the
// password or as the user name (the usual way to put a token in a URL).
func TestArtifactURLPasswordHidden(t *testing.T) {
	const secret = "s3cret-pw"
	good := srvTarGz(t, []srvEntry{{name: "f", body: "x"}})
	evil := srvTarGz(t, []srvEntry{{name: "/etc/evil", body: "x"}})
	srv := newArtifactServer(t, map[string][]byte{"a.tar.gz": good, "evil.tar.gz": evil})
	closed := newArtifactServer(t, nil)
	closed.Close()
	withPassword := func(base, file string) string {
		return strings.Replace(base, "http://", "http://deploy:"+secret+"@", 1) + "/" + file
	}
	withToken := func(base, file string) string {
		return strings.Replace(base, "http://", "http://"+secret+"@", 1) + "/" + file
	}
	cases := []struct {
		name, url, sum, want string
	}{
		{"not found", withPassword(srv.URL, "nope.tar.gz"), srvSum(good), "404"},
		{"wrong sha256", withPassword(srv.URL, "a.tar.gz"), srvSum([]byte("other")), "sha256 mismatch"},
		{"no server", withPassword(closed.URL, "a.tar.gz"), srvSum(good), "download"},
		{"refused archive", withPassword(srv.URL, "evil.tar.gz"), srvSum(evil), "absolute path"},
		{"token not found", withToken(srv.URL, "nope.tar.gz"), srvSum(good), "404"},
		{"token wrong sha256", withToken(srv.URL, "a.tar.gz"), srvSum([]byte("other")), "sha256 mismatch"},
		{"token no server", withToken(closed.URL, "a.tar.gz"), srvSum(good), "download"},
		{"token refused archive", withToken(srv.URL, "evil.tar.gz"), srvSum(evil), "absolute path"},
		{"token unparsable", withToken(srv.URL, "%zz.tar.gz"), srvSum(good), "is not an http or https URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &ArtifactDriver{TempDir: t.TempDir()}
			_, err := srvConverge(t, NewLocal(t.TempDir()), d, artifactRes("/opt/x", tc.url, tc.sum, 0))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the URL's password: %v", err)
			}
		})
	}
}
