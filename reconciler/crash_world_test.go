package reconciler

// The SIGKILL test's world: a store and two local hosts on the old
// revision, copied for each iteration, and one iteration: run the child
// rollout, kill it, recover, and check the hosts.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/need"
)

// copyTree copies a folder (regular files, folders with their modes, and
// links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			return os.Chmod(out, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

type crashWorld struct {
	base, repos string
	old, new    sources.Revision
	// native applies through the kinds' native code (folders and links
	// too).
	native bool
	// ssh, when set, puts the hosts on real SSH hosts reached through the
	// agent; nil for the local hosts of the world's folder.
	ssh *crashSSH
}

// newCrashWorld applies the old revision once; each iteration copies it.
func newCrashWorld(t testing.TB, native bool) *crashWorld {
	if _, err := exec.LookPath("sh"); err != nil {
		need.Missing(t, "no sh for the local transport")
	}
	return buildCrashWorld(t, native, nil)
}

// buildCrashWorld writes the revisions and applies the old one, on the
// local hosts or on the SSH hosts of cs.
func buildCrashWorld(t testing.TB, native bool, cs *crashSSH) *crashWorld {
	dir := t.TempDir()
	w := &crashWorld{base: filepath.Join(dir, "base"), repos: filepath.Join(dir, "repos"), native: native, ssh: cs}
	var addrs []string
	if cs != nil {
		addrs = cs.addrs()
	}
	w.old = crashRevision(t, w.repos, "old", 1, native, addrs)
	w.new = crashRevision(t, w.repos, "new", 2, native, addrs)
	if err := os.MkdirAll(w.base, 0o755); err != nil {
		t.Fatal(err)
	}
	r, s, err := crashReconciler(w.base, w.dialer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ApplyRevision(context.Background(), w.old); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	_ = s.Close()
	return w
}

// dialer is how the parent reaches the hosts.
func (w *crashWorld) dialer() Dialer {
	if w.ssh != nil {
		return w.ssh.dialer
	}
	return crashDialer(w.native)
}

// hostRoot is where host h's files are seen from the test, in world.
func (w *crashWorld) hostRoot(world string, h int) string {
	if w.ssh != nil {
		return w.ssh.hosts[h].Root
	}
	return filepath.Join(world, "hosts", fmt.Sprintf("h%d", h))
}

// iteration runs the child in a copy of the world, kills it after delay
// (never, when delay < 0), recovers, and checks the hosts. It returns
// which revision the hosts ended on, how long the child ran after it
// started applying, and how many snapshots recovery found.
func (w *crashWorld) iteration(world string, delay time.Duration) (version string, ran time.Duration, journaled int, err error) {
	if err := copyTree(w.base, world); err != nil {
		return "", 0, 0, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRollout$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+world, "DRIFTLESS_HELPER_REV="+w.new.Dir, "DRIFTLESS_HELPER_COMMIT="+w.new.Commit)
	if w.native {
		cmd.Env = append(cmd.Env, "DRIFTLESS_HELPER_NATIVE=1")
	}
	if w.ssh != nil {
		// The hosts are put back on the old revision, as the store copied
		// from the base says they are.
		if err := w.ssh.reset(); err != nil {
			return "", 0, 0, err
		}
		cmd.Env = append(cmd.Env, helperSSHEnv+"="+w.ssh.spec)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, 0, err
	}
	br := bufio.NewReader(stdout)
	if line, err := br.ReadString('\n'); err != nil || line != "applying\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", 0, 0, fmt.Errorf("child did not start: %q %v", line, err)
	}
	start := time.Now()
	// ran ends when the child says its rollout is over, or when its
	// output ends; the output is read to its end before Wait.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := br.ReadString('\n')
			if line == "applied\n" && ran == 0 {
				ran = time.Since(start)
			}
			if err != nil {
				if ran == 0 {
					ran = time.Since(start)
				}
				return
			}
		}
	}()
	if delay >= 0 {
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	<-done
	_ = cmd.Wait()

	r, s, err := crashReconciler(world, w.dialer())
	if err != nil {
		return "", 0, 0, err
	}
	defer s.Close()
	defer r.Close()
	if err := r.Recover(context.Background()); err != nil {
		return "", 0, 0, fmt.Errorf("recover: %w", err)
	}
	if hist, _ := s.History("prod", 1); len(hist) == 1 && hist[0].Trigger == status.TriggerRecovery {
		journaled = hist[0].Changes
	}
	if j, _, _ := s.OpenJournal("prod"); j != nil {
		return "", 0, 0, fmt.Errorf("journal still open after recovery")
	}
	for h := 0; h < crashHosts; h++ {
		for i := 0; i < crashFiles; i++ {
			host := w.hostRoot(world, h)
			p := filepath.Join(host, fmt.Sprintf("etc/f%02d.conf", i))
			b, err := os.ReadFile(p)
			if err != nil {
				return "", 0, 0, err
			}
			var v string
			switch string(b) {
			case crashContent("old", i):
				v = "old"
			case crashContent("new", i):
				v = "new"
			default:
				return "", 0, 0, fmt.Errorf("%s is torn: %d bytes, starting %q", p, len(b), string(b[:min(len(b), 40)]))
			}
			if version == "" {
				version = v
			}
			if v != version {
				return "", 0, 0, fmt.Errorf("mixed revisions: %s is %s, an earlier file is %s", p, v, version)
			}
			if !w.native {
				continue
			}
			fi, err := os.Stat(filepath.Join(host, fmt.Sprintf("etc/d%02d", i)))
			if err != nil {
				return "", 0, 0, err
			}
			if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != crashDirMode(version) {
				return "", 0, 0, fmt.Errorf("mixed revisions: folder d%02d of h%d has mode %s, its files are %s", i, h, got, version)
			}
			if got, err := os.Readlink(filepath.Join(host, fmt.Sprintf("etc/l%02d", i))); err != nil || got != crashLink(version, i) {
				return "", 0, 0, fmt.Errorf("mixed revisions: link l%02d of h%d points at %q (%v), its files are %s", i, h, got, err, version)
			}
		}
	}
	var left []string
	for h := 0; h < crashHosts; h++ {
		_ = filepath.WalkDir(filepath.Join(w.hostRoot(world, h), "etc"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), ".driftless-") {
				left = append(left, p)
			}
			return nil
		})
	}
	if len(left) > 0 {
		return "", 0, 0, fmt.Errorf("temporary files left: %v", left)
	}
	want := map[string]string{"old": w.old.Commit, "new": w.new.Commit}[version]
	if rec, _, _ := s.Env("prod"); rec.Applied.Commit != want {
		return "", 0, 0, fmt.Errorf("the hosts are on the %s revision, the store says %s is applied", version, rec.Applied.Short())
	}
	return version, ran, journaled, nil
}
