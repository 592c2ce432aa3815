package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects to h as root with the lab's key and known_hosts.
func dial(t testing.TB, lab *hosts.Lab, h *hosts.Host, mod func(*ssh.Config)) *ssh.Transport {
	t.Helper()
	cfg := ssh.Config{Address: h.Address, KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile, Timeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := ssh.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestRun(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("run")
	tr := dial(t, lab, h, nil)
	tests := []struct {
		name, script, stdin string
		exit                int
		stdout, stderr      string
	}{
		{"hostname", "hostname", "", 0, "run\n", ""},
		{"exit status", "echo out; echo err >&2; exit 7", "", 7, "out\n", "err\n"},
		{"stdin", "tr a-z A-Z", "hello", 0, "HELLO", ""},
		{"quotes and dollars", `x='a "b" $c'; printf '%s\n' "$x"`, "", 0, "a \"b\" $c\n", ""},
		{"set -e stops", "set -e\nfalse\necho not reached", "", 1, "", ""},
		{"syntax error runs nothing", "touch /tmp/ran\nif then", "", 2, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tr.Run(context.Background(), tt.script, []byte(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			if res.Exit != tt.exit || string(res.Stdout) != tt.stdout || (tt.stderr != "" && string(res.Stderr) != tt.stderr) {
				t.Fatalf("got exit %d stdout %q stderr %q; want %d %q %q", res.Exit, res.Stdout, res.Stderr, tt.exit, tt.stdout, tt.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(h.Root, "tmp/ran")); err == nil {
		t.Fatal("a script with a syntax error ran its first line")
	}
	if got := tr.RoundTrips(); got != int64(len(tests)) {
		t.Fatalf("RoundTrips = %d, want %d", got, len(tests))
	}

	// A login shell that prints something does not pollute the output.
	h.MustExec(t, "echo 'echo chatty bashrc' >> /root/.bashrc")
	if res, err := tr.Run(context.Background(), "echo clean", nil); err != nil || string(res.Stdout) != "clean\n" {
		t.Fatalf("output under a chatty .bashrc: %q %v", res.Stdout, err)
	}
}

func TestLargeScriptAndBinaryStdin(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("large")
	tr := dial(t, lab, h, nil)

	// A 300 KB script: far over the 128 KB limit of one command-line argument.
	var sb strings.Builder
	for i := 0; sb.Len() < 300_000; i++ {
		fmt.Fprintf(&sb, "echo line-%06d-%s\n", i, strings.Repeat("x", 40))
	}
	res, err := tr.Run(context.Background(), sb.String()+"exit 3\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(sb.String(), "\n")
	if res.Exit != 3 || strings.Count(string(res.Stdout), "\n") != lines {
		t.Fatalf("large script: exit %d, %d lines of output, want 3 and %d", res.Exit, strings.Count(string(res.Stdout), "\n"), lines)
	}

	blob := make([]byte, 2<<20)
	rand.Read(blob)
	blob[0], blob[1] = 0, '\n' // NUL and newline bytes survive too
	res, err = tr.Run(context.Background(), "sha256sum | cut -d' ' -f1", blob)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	if got := strings.TrimSpace(string(res.Stdout)); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("binary stdin arrived altered: remote sha256 %s, want %x (stderr %s)", got, sum, res.Stderr)
	}

	// A script that does not read all of its input (more than the SSH
	// channel window) still reports its own exit status, not an error
	// about the input it left.
	unread := make([]byte, 8<<20)
	for _, tt := range []struct {
		script string
		exit   int
	}{{"true", 0}, {"exit 4", 4}, {"head -c 5 >/dev/null", 0}} {
		res, err := tr.Run(context.Background(), tt.script, unread)
		if err != nil || res.Exit != tt.exit {
			t.Fatalf("%q with 8 MiB of unread stdin: exit %d, %v; want exit %d", tt.script, res.Exit, err, tt.exit)
		}
	}
}

func TestWriteFile(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("write")
	tr := dial(t, lab, h, nil)
	ctx := context.Background()

	data := []byte("key=value\n\x00binary\n")
	if err := tr.WriteFile(ctx, "/etc/app.conf", data, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(h.Root, "etc/app.conf"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("written file: %q %v", got, err)
	}
	if st, _ := os.Stat(filepath.Join(h.Root, "etc/app.conf")); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", st.Mode().Perm())
	}

	// A full file system: the write fails and the old file is intact.
	h.MustExec(t, "mkdir -p /mnt/small && mount -t tmpfs -o size=64k tmpfs /mnt/small && echo old > /mnt/small/f")
	err = tr.WriteFile(ctx, "/mnt/small/f", bytes.Repeat([]byte("y"), 1<<20), 0o644)
	if err == nil {
		t.Fatal("a write to a full file system succeeded")
	}
	if out := h.MustExec(t, "cat /mnt/small/f; ls -A /mnt/small"); out != "old\nf\n" {
		t.Fatalf("after a failed write the folder holds %q, want the old file alone", out)
	}

	// A directory in the way is refused, not written into.
	h.MustExec(t, "mkdir -p /srv/dir")
	if err := tr.WriteFile(ctx, "/srv/dir", []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("write over a directory: %v", err)
	}
	if out := h.MustExec(t, "ls -A /srv/dir /srv"); out != "/srv:\ndir\n\n/srv/dir:\n" {
		t.Fatalf("after a refused write /srv holds %q", out)
	}
	if err := tr.WriteFile(ctx, "relative/path", nil, 0o644); err == nil {
		t.Fatal("a relative path was accepted")
	}

	// A write cut off by its deadline (here a sync that hangs) leaves the
	// old file and no temporary file behind.
	h.MustExec(t, "printf '#!/bin/sh\\nsleep 60\\n' > /usr/local/bin/sync && chmod 755 /usr/local/bin/sync")
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := tr.WriteFile(short, "/etc/app.conf", []byte("new\n"), 0o644); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write with a hanging sync: %v, want deadline exceeded", err)
	}
	if got, _ := os.ReadFile(filepath.Join(h.Root, "etc/app.conf")); !bytes.Equal(got, data) {
		t.Fatalf("a timed-out write changed the file: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(h.Root, "etc/.app.conf.driftless-*")); len(left) > 0 {
		t.Fatalf("a timed-out write left %v", left)
	}
	if st, _ := os.Stat(filepath.Join(h.Root, "etc/app.conf")); st.Mode().Perm() != 0o640 {
		t.Fatalf("a timed-out write changed the mode to %v", st.Mode().Perm())
	}
}

func TestHostKeys(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("keys")
	other := lab.Kind1("other")
	ctx := context.Background()
	dir := t.TempDir()
	wrongKH := filepath.Join(dir, "wrong_known_hosts")
	// The file claims h has other's key: what a man in the middle looks like.
	if err := os.WriteFile(wrongKH, []byte(strings.Replace(other.KnownHostsLine(), other.Address, h.Address, 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)

	refused := []struct {
		name string
		cfg  ssh.Config
		want error
	}{
		{"changed key", ssh.Config{KnownHostsFile: wrongKH}, ssh.ErrHostKeyMismatch},
		{"unknown host", ssh.Config{KnownHostsFile: empty}, ssh.ErrHostKeyUnknown},
		{"wrong pinned key", ssh.Config{PinnedKey: other.AuthorizedKey()}, ssh.ErrHostKeyMismatch},
		{"changed key with TOFU", ssh.Config{KnownHostsFile: wrongKH, TrustOnFirstUse: true}, ssh.ErrHostKeyMismatch},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Address, cfg.KeyFiles = h.Address, []string{lab.ClientKeyFile}
			tr, err := ssh.Dial(ctx, cfg)
			if err == nil {
				tr.Run(ctx, "touch /refused-marker", nil)
				tr.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("dial: %v, want %v", err, tt.want)
			}
			fp := ssh.Fingerprint(h.HostKey)
			if !strings.Contains(err.Error(), h.Address) || !strings.Contains(err.Error(), fp) {
				t.Fatalf("error %q does not name the host and its fingerprint %s", err, fp)
			}
			if _, err := os.Stat(filepath.Join(h.Root, "refused-marker")); err == nil {
				t.Fatal("a command ran on a host whose key was refused")
			}
		})
	}
	if data, _ := os.ReadFile(wrongKH); strings.Contains(string(data), h.AuthorizedKey()) {
		t.Fatal("TOFU recorded a changed key")
	}

	t.Run("pinned key", func(t *testing.T) {
		tr := dial(t, lab, h, func(c *ssh.Config) { c.KnownHostsFile, c.PinnedKey = "", h.AuthorizedKey() })
		if res, err := tr.Run(ctx, "hostname", nil); err != nil || string(res.Stdout) != "keys\n" {
			t.Fatalf("run over pinned key: %q %v", res.Stdout, err)
		}
	})
	t.Run("trust on first use", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
		tr := dial(t, lab, h, func(c *ssh.Config) { c.KnownHostsFile, c.TrustOnFirstUse = kh, true })
		tr.Close()
		data, err := os.ReadFile(kh)
		if err != nil || strings.TrimSpace(string(data)) != h.KnownHostsLine() {
			t.Fatalf("known_hosts after TOFU: %q %v, want %q", data, err, h.KnownHostsLine())
		}
		// Now recorded, the host is accepted without TOFU, and recorded once only.
		tr = dial(t, lab, h, func(c *ssh.Config) { c.KnownHostsFile = kh })
		tr.Close()
		tr = dial(t, lab, h, func(c *ssh.Config) { c.KnownHostsFile, c.TrustOnFirstUse = kh, true })
		tr.Close()
		if data, _ := os.ReadFile(kh); strings.Count(string(data), "\n") != 1 {
			t.Fatalf("known_hosts grew on a known host: %q", data)
		}
	})
}
