package targets_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// hostTarGz builds a tar.gz of regular files (name -> body) plus extra headers.
func hostTarGz(t testing.TB, files map[string]string, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range extra {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
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

func hostZip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, body := range files {
		w, err := zw.Create(n)
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

func hostSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestArtifactOnHost deploys artifacts the daemon downloads from a loopback
// server to a kind-1 host through the agent: a tar.gz, then a zip, heals a
// switched current, refuses an escaping archive with nothing extracted,
// keeps 2 releases, and restores the first deployment exactly. Every
// apply and restore goes through the agent: no SSH session besides its.
func TestArtifactOnHost(t *testing.T) {
	v1 := hostTarGz(t, map[string]string{"bin/app": "#!/bin/sh\necho v1\n"}, &tar.Header{Name: "run", Linkname: "bin/app", Typeflag: tar.TypeSymlink})
	v2 := hostZip(t, map[string]string{"bin/app": "#!/bin/sh\necho v2\n"})
	v3 := hostTarGz(t, map[string]string{"bin/app": "#!/bin/sh\necho v3\n"})
	evil := hostTarGz(t, map[string]string{"ok": "x"}, &tar.Header{Name: "bin", Linkname: "../../../etc", Typeflag: tar.TypeSymlink})
	files := map[string][]byte{"/v1.tar.gz": v1, "/v2.zip": v2, "/v3.tar.gz": v3, "/evil.tar.gz": evil}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := files[r.URL.Path]; ok {
			_, _ = w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("artifact")
	tr := srvDial(t, lab, h)
	d := &targets.ArtifactDriver{TempDir: t.TempDir()}
	res := func(file string, b []byte) config.Resource {
		return config.Resource{Kind: "artifact", Name: "/opt/app", Spec: &targets.ArtifactSpec{URL: srv.URL + file, SHA256: hostSum(b), Keep: 2}}
	}
	run := func() string { return strings.TrimSpace(h.MustExec(t, "/opt/app/current/bin/app")) }
	started := tr.RoundTrips()
	defer func() {
		if n := tr.RoundTrips() - started; n != 0 && !t.Failed() {
			t.Errorf("%d SSH sessions besides the agent's: an apply or a restore did not go through the agent", n)
		}
	}()

	before := srvHostObserve(t, tr, d, res("/v1.tar.gz", v1))
	srvHostConverge(t, tr, d, res("/v1.tar.gz", v1), targets.Create)
	if got := run(); got != "v1" {
		t.Fatalf("v1 runs %q", got)
	}
	srvHostConverge(t, tr, d, res("/v1.tar.gz", v1), targets.NoChange)
	snap1 := srvHostObserve(t, tr, d, res("/v2.zip", v2))
	srvHostConverge(t, tr, d, res("/v2.zip", v2), targets.Update)
	if got := strings.TrimSpace(h.MustExec(t, "sh /opt/app/current/bin/app")); got != "v2" {
		t.Fatalf("v2 runs %q", got)
	}

	// Behind its back: current switched to v1 by hand; the next pass heals it.
	h.MustExec(t, "ln -sfn releases/"+hostSum(v1)[:12]+" /opt/app/current")
	srvHostConverge(t, tr, d, res("/v2.zip", v2), targets.Update)

	// An archive with a symlink out of the destination is refused; the host is untouched.
	listing := h.MustExec(t, "find /opt/app | sort")
	st := srvHostObserve(t, tr, d, res("/evil.tar.gz", evil))
	if err := d.Apply(t.Context(), tr, res("/evil.tar.gz", evil), st); err == nil || !strings.Contains(err.Error(), "outside the destination") {
		t.Fatalf("apply of an escaping archive: %v", err)
	}
	if got := h.MustExec(t, "find /opt/app | sort"); got != listing {
		t.Fatalf("a refused archive changed the host:\n%s\nwas:\n%s", got, listing)
	}

	// Restore the v1 deployment, then deploy v2 and v3: keep 2 holds v2 and v3.
	srvRestore(t, tr, d, res("/v2.zip", v2), snap1, sameState)
	srvHostConverge(t, tr, d, res("/v2.zip", v2), targets.Update)
	srvHostConverge(t, tr, d, res("/v3.tar.gz", v3), targets.Update)
	ents, err := os.ReadDir(filepath.Join(h.Root, "opt/app/releases"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{hostSum(v2)[:12], hostSum(v3)[:12]}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("releases %v, want %v", got, want)
	}
	srvRestore(t, tr, d, res("/v3.tar.gz", v3), before, sameState)
	if _, err := os.Lstat(filepath.Join(h.Root, "opt/app")); !os.IsNotExist(err) {
		t.Fatalf("restore to nothing left /opt/app: %v", err)
	}
}

// BenchmarkArtifactDeploySSH deploys a new 16 MiB release (64 files) to a
// kind-1 host and switches to it, through the agent ("agent"): the archive
// sent after the apply request, its sha256 and entries checked again on
// the host, unpacked, owned, renamed and switched. The download is cached
// before the loop, so this measures the stream and the host's work. Its
// floor ("floor") is the cheapest way to the same files: the same archive
// streamed over the same SSH connection into one `tar -xzf`, with no check
// and no switch. Each round starts from an empty folder (not timed).
func BenchmarkArtifactDeploySSH(b *testing.B) {
	files := map[string]string{}
	chunk := strings.Repeat("driftless artifact payload line\n", 8192) // 256 KiB
	for i := 0; i < 64; i++ {
		files["lib/f"+strconv.Itoa(i)] = chunk
	}
	var arts [][]byte
	for i := 0; i < 2; i++ {
		files["VERSION"] = strconv.Itoa(i)
		arts = append(arts, hostTarGz(b, files))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".tar.gz"))
		if err != nil || i < 0 || i >= len(arts) {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(arts[i])
	}))
	b.Cleanup(srv.Close)
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("bench")
	tr := srvDial(b, lab, h)
	res := func(i int) config.Resource {
		return config.Resource{Kind: "artifact", Name: "/opt/bench", Spec: &targets.ArtifactSpec{
			URL: srv.URL + "/" + strconv.Itoa(i%2) + ".tar.gz", SHA256: hostSum(arts[i%2]), Keep: 1}}
	}
	b.Run("agent", func(b *testing.B) {
		d := &targets.ArtifactDriver{TempDir: b.TempDir()}
		for i := range arts {
			if err := d.Apply(b.Context(), tr, res(i), targets.State{}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(64 * len(chunk)))
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			h.MustExec(b, "rm -rf /opt/bench")
			b.StartTimer()
			if err := d.Apply(b.Context(), tr, res(i), targets.State{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		b.SetBytes(int64(64 * len(chunk)))
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			h.MustExec(b, "rm -rf /opt/bench")
			b.StartTimer()
			out, err := tr.ssh.Run(b.Context(), "mkdir -p /opt/bench && tar -xzf - -C /opt/bench", arts[i%2])
			if err != nil || out.Exit != 0 {
				b.Fatalf("tar over ssh: %v, exit %d: %s", err, out.Exit, out.Stderr)
			}
		}
	})
}
