package targets

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/need"
)

// TestArtifactLocalLifecycle deploys a tar.gz and a zip over loopback HTTP,
// switches back and forth, heals drift without downloading
// again, and restores snapshots exactly.
func TestArtifactLocalLifecycle(t *testing.T) {
	v1 := srvTarGz(t, []srvEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/app", body: "v1"},
		{name: "run", link: "bin/app", typ: tar.TypeSymlink},
		{name: "bin/app.hard", link: "bin/app", typ: tar.TypeLink},
	})
	v2 := srvZip(t, []srvEntry{
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/app", body: "v2"},
		{name: "run", link: "bin/app", typ: tar.TypeSymlink},
	})
	srv := newArtifactServer(t, map[string][]byte{"app-1.tar.gz": v1, "app-2.zip": v2})
	root := t.TempDir()
	tr := NewLocal(root)
	d := &ArtifactDriver{TempDir: t.TempDir()}
	dir := filepath.Join(root, "opt/app")
	r1 := artifactRes("/opt/app", srv.URL+"/app-1.tar.gz", srvSum(v1), 0)

	before := srvObserve(t, tr, d, r1)
	c := srvMustConverge(t, tr, d, r1, Create)
	if !strings.Contains(c.Diff, "releases/"+srvSum(v1)[:12]) {
		t.Errorf("diff %q does not name the release", c.Diff)
	}
	if got := readCurrent(t, dir, "run"); got != "v1" {
		t.Fatalf("current/run = %q, want v1", got)
	}
	if got := readCurrent(t, dir, "bin/app.hard"); got != "v1" {
		t.Fatalf("current/bin/app.hard = %q, want v1", got)
	}
	srvMustConverge(t, tr, d, r1, NoChange)

	r2 := artifactRes("/opt/app", srv.URL+"/app-2.zip", srvSum(v2), 0)
	snap1 := srvObserve(t, tr, d, r2)
	srvMustConverge(t, tr, d, r2, Update)
	if got := readCurrent(t, dir, "run"); got != "v2" {
		t.Fatalf("current/run = %q, want v2", got)
	}

	// Drift: someone points current back at v1. The next pass sees it and
	// switches to v2 again without fetching anything.
	if err := os.Remove(filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/"+srvSum(v1)[:12], filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	hits := srv.hits.Load()
	srvMustConverge(t, tr, d, r1, NoChange)
	srvMustConverge(t, tr, d, r2, Update)
	if srv.hits.Load() != hits {
		t.Errorf("switching to a release on the host downloaded it again")
	}

	// Drift: the release folder itself vanishes; the next pass fetches it again.
	if err := os.RemoveAll(filepath.Join(dir, "releases", srvSum(v2)[:12])); err != nil {
		t.Fatal(err)
	}
	srvMustConverge(t, tr, d, r2, Update)
	if got := readCurrent(t, dir, "run"); got != "v2" {
		t.Fatalf("after healing current/run = %q, want v2", got)
	}

	ctx := context.Background()
	if err := d.Restore(ctx, tr, r2, snap1); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := srvObserve(t, tr, d, r2); !reflect.DeepEqual(got, snap1) {
		t.Fatalf("after restore state = %+v, want %+v", got, snap1)
	}
	if got := readCurrent(t, dir, "run"); got != "v1" {
		t.Fatalf("after restore current/run = %q, want v1", got)
	}
	if err := d.Restore(ctx, tr, r1, before); err != nil {
		t.Fatalf("restore to nothing: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore to nothing left %s behind (%v)", dir, err)
	}
}

// TestArtifactKeep deploys five versions with keep 2: two releases stay.
func TestArtifactKeep(t *testing.T) {
	files := map[string][]byte{}
	var sums []string
	for i := 0; i < 5; i++ {
		b := srvTarGz(t, []srvEntry{{name: "v", body: strings.Repeat("x", i+1)}})
		files["a"+string(rune('0'+i))+".tar.gz"] = b
		sums = append(sums, srvSum(b))
	}
	srv := newArtifactServer(t, files)
	root := t.TempDir()
	tr := NewLocal(root)
	d := &ArtifactDriver{TempDir: t.TempDir()}
	for i := range sums {
		r := artifactRes("/srv/a", srv.URL+"/a"+string(rune('0'+i))+".tar.gz", sums[i], 2)
		srvMustConverge(t, tr, d, r, map[bool]Action{true: Create, false: Update}[i == 0])
	}
	want := []string{sums[3][:12], sums[4][:12]}
	sort.Strings(want)
	if got := releasesOf(t, filepath.Join(root, "srv/a")); !reflect.DeepEqual(got, want) {
		t.Fatalf("releases = %v, want %v", got, want)
	}
}

// TestArtifactBadSpec refuses a malformed declaration before any download.
func TestArtifactBadSpec(t *testing.T) {
	d := &ArtifactDriver{}
	tr := NewLocal(t.TempDir())
	for _, r := range []config.Resource{
		artifactRes("/opt/x", "http://127.0.0.1:1/a.tar.gz", "abc", 0),
		artifactRes("relative", "http://127.0.0.1:1/a.tar.gz", strings.Repeat("a", 64), 0),
		artifactRes("/opt/x", "ftp://127.0.0.1/a.tar.gz", strings.Repeat("a", 64), 0),
	} {
		if err := d.Apply(context.Background(), tr, r, State{}); err == nil {
			t.Errorf("apply of %+v succeeded", r.Spec)
		}
	}
}

// TestArtifactOneDownloadForManyHosts deploys one artifact to several hosts
// at once: the daemon downloads and checks it once.
func TestArtifactOneDownloadForManyHosts(t *testing.T) {
	a := srvTarGz(t, []srvEntry{{name: "f", body: "shared"}})
	srv := newArtifactServer(t, map[string][]byte{"a.tar.gz": a})
	d := &ArtifactDriver{TempDir: t.TempDir()}
	r := artifactRes("/opt/a", srv.URL+"/a.tar.gz", srvSum(a), 0)
	roots := make([]string, 4)
	errs := make(chan error, len(roots))
	for i := range roots {
		roots[i] = t.TempDir()
		go func(root string) {
			errs <- d.Apply(context.Background(), NewLocal(root), r, State{})
		}(roots[i])
	}
	for range roots {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, root := range roots {
		if got := readCurrent(t, filepath.Join(root, "opt/a"), "f"); got != "shared" {
			t.Fatalf("%s: current/f = %q", root, got)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d downloads for %d hosts, want 1", n, len(roots))
	}
}

// TestArtifactOwner hands the unpacked release to the declared owner.
func TestArtifactOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		need.Missing(t, "chown to another user needs root")
	}
	a := srvTarGz(t, []srvEntry{{name: "bin/", typ: tar.TypeDir}, {name: "bin/app", body: "x"}})
	srv := newArtifactServer(t, map[string][]byte{"a.tar.gz": a})
	root := t.TempDir()
	d := &ArtifactDriver{TempDir: t.TempDir()}
	r := config.Resource{Kind: "artifact", Name: "/opt/o", Spec: &ArtifactSpec{URL: srv.URL + "/a.tar.gz", SHA256: srvSum(a), Owner: "65534:65534"}}
	srvMustConverge(t, NewLocal(root), d, r, Create)
	for _, p := range []string{"opt/o/current/bin/app", "opt/o/current/bin"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Fatalf("%s owned by %d:%d, want 65534:65534", p, st.Uid, st.Gid)
		}
	}
}

// TestArtifactHostRefusesArchive gives the host's native apply archives
// the daemon would never send: one cut in half (as a dropped connection
// would), which does not match its declared sha256, and one that matches
// its sha256 but holds an entry escaping its folder, or a link out. Each
// is refused, and the host is exactly as it was: no half release, no
// hidden folder left, current where it pointed. An archive given to a
// step of another kind is refused too.
func TestArtifactHostRefusesArchive(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	good := srvTarGz(t, []srvEntry{{name: "f", body: string(big)}})
	escaping := srvTarGz(t, []srvEntry{{name: "ok", body: "x"}, {name: "a/../../evil", body: "x"}})
	linkOut := srvZip(t, []srvEntry{{name: "ok", body: "x"}, {name: "l", link: "../../../etc", typ: tar.TypeSymlink}})
	cases := []struct {
		name, want, sum string
		archive         []byte
		kind            string
	}{
		{name: "cut in half", archive: good[:len(good)/2], sum: srvSum(good), want: "sha256 mismatch"},
		{name: "escaping entry", archive: escaping, sum: srvSum(escaping), want: ".. component"},
		{name: "link out", archive: linkOut, sum: srvSum(linkOut), want: "outside the destination"},
		{name: "not an artifact", archive: good, sum: srvSum(good), kind: "directory", want: "only an artifact's apply takes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "opt/t")
			if err := os.MkdirAll(filepath.Join(dir, "releases/111111111111"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("releases/111111111111", filepath.Join(dir, "current")); err != nil {
				t.Fatal(err)
			}
			before := treeListing(t, root)
			r := artifactRes("/opt/t", "https://a.example/t", tc.sum, 0)
			if tc.kind == "directory" {
				r = config.Resource{Kind: "directory", Name: "/opt/t/d", Spec: &DirectorySpec{}}
			}
			n, err := NewLocal(root).ApplyNative(context.Background(), []Step{{
				Op: StepApply, Resource: r, Archive: io.NewSectionReader(bytes.NewReader(tc.archive), 0, int64(len(tc.archive)))}})
			if n != 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply = %d, %v; want it refused saying %q", n, err, tc.want)
			}
			if after := treeListing(t, root); after != before {
				t.Fatalf("a refused archive changed the host:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// treeListing lists everything under root: names, types, modes, file
// sizes and link targets.
func treeListing(t *testing.T, root string) string {
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
		link, _ := os.Readlink(p)
		size := fi.Size()
		if fi.IsDir() {
			size = 0 // a folder's size depends on its filesystem's history
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", strings.TrimPrefix(p, root), fi.Mode(), size, link)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
