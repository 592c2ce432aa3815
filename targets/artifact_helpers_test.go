package targets

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
)

// srvEntry is one entry of an archive a test builds.
type srvEntry struct {
	name, body, link string
	typ              byte
}

func srvTarGz(t testing.TB, entries []srvEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o755, Linkname: e.link, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
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

func srvZip(t testing.TB, entries []srvEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		switch e.typ {
		case tar.TypeSymlink:
			h.SetMode(os.ModeSymlink | 0o777)
			body = e.link
		case tar.TypeDir:
			h.SetMode(os.ModeDir | 0o755)
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func srvSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// srvArtifactServer serves files on loopback and counts requests, so a
// test can tell a switch back from a new download.
type srvArtifactServer struct {
	*httptest.Server
	files map[string][]byte
	hits  atomic.Int64
}

func newArtifactServer(t testing.TB, files map[string][]byte) *srvArtifactServer {
	s := &srvArtifactServer{files: files}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		b, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

// srvObserve observes one resource through the real batched Observe.
func srvObserve(t *testing.T, tr Transport, d Driver, r config.Resource) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	states, err := Observe(ctx, tr, map[string]Driver{d.Kind(): d}, []config.Resource{r})
	if err != nil {
		t.Fatalf("observe %s: %v", r.ID(), err)
	}
	return states[r.ID()]
}

// srvConverge observes, diffs and applies when needed; it returns the change
// that was applied (or NoChange) and the error of the observe or the apply.
func srvConverge(t *testing.T, tr Transport, d Driver, r config.Resource) (Change, error) {
	t.Helper()
	octx, ocancel := context.WithTimeout(context.Background(), time.Minute)
	defer ocancel()
	states, err := Observe(octx, tr, map[string]Driver{d.Kind(): d}, []config.Resource{r})
	if err != nil {
		return Change{}, err
	}
	st := states[r.ID()]
	c := d.Diff(r, st)
	if c.Action == NoChange {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return c, d.Apply(ctx, tr, r, st)
}

func srvMustConverge(t *testing.T, tr Transport, d Driver, r config.Resource, want Action) Change {
	t.Helper()
	c, err := srvConverge(t, tr, d, r)
	if err != nil {
		t.Fatalf("apply %s: %v", r.ID(), err)
	}
	if c.Action != want {
		t.Fatalf("%s: action %s, want %s (diff %q)", r.ID(), c.Action, want, c.Diff)
	}
	if c.Action != NoChange {
		if again := d.Diff(r, srvObserve(t, tr, d, r)); again.Action != NoChange {
			t.Fatalf("%s: not converged after apply: %s %q", r.ID(), again.Action, again.Diff)
		}
	}
	return c
}

func artifactRes(name, url, sum string, keep int) config.Resource {
	return config.Resource{Kind: "artifact", Name: name, Spec: &ArtifactSpec{URL: url, SHA256: sum, Keep: keep}}
}

func releasesOf(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func readCurrent(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "current", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
