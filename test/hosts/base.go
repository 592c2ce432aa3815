package hosts

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// baseVersion names the cached base; bump it when the package list or the
// preparation steps change so that stale caches are not reused.
const baseVersion = "bookworm-v1"

// basePackages is what every test host needs: systemd for kind-2 hosts,
// sshd for both, iproute2 and nftables for the network drivers, sudo for
// non-root transports.
const basePackages = "systemd,systemd-sysv,openssh-server,iproute2,nftables,dbus,sudo,ca-certificates"

// cacheDir is where the base tar and the shared lower dir live. It honours
// XDG_CACHE_HOME through os.UserCacheDir, and falls back to the temp dir.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "driftless-testbed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create test-bed cache %s: %w", dir, err)
	}
	return dir, nil
}

// withFlock runs fn while holding an exclusive lock on path, so parallel test
// processes never build or extract the same thing twice at once.
func withFlock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway
	return fn()
}

// lowerDir returns the extracted shared base, building the tar first if the
// cache has none. The base is never written: hosts see it through overlays.
func lowerDir(ctx context.Context, logf func(string, ...any)) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	tarPath := filepath.Join(dir, "base-"+baseVersion+".tar")
	err = withFlock(filepath.Join(dir, "base.lock"), func() error {
		if _, err := os.Stat(tarPath); err == nil {
			return nil
		}
		// Build folders of runs killed mid-way are only garbage now: the
		// lock is ours, so no other build is using them.
		if old, _ := filepath.Glob(filepath.Join(dir, "build-*")); len(old) > 0 {
			for _, o := range old {
				os.RemoveAll(o)
			}
		}
		logf("building the test-host base with debootstrap (once per cache, a few minutes)")
		return buildBase(ctx, dir, tarPath)
	})
	if err != nil {
		return "", err
	}
	lower := filepath.Join(dir, "lower-"+baseVersion)
	done := lower + ".done"
	err = withFlock(filepath.Join(dir, "lower.lock"), func() error {
		if _, err := os.Stat(done); err == nil {
			return nil
		}
		if err := os.RemoveAll(lower); err != nil {
			return fmt.Errorf("remove partial lower dir: %w", err)
		}
		if err := os.MkdirAll(lower, 0o755); err != nil {
			return fmt.Errorf("create lower dir: %w", err)
		}
		if out, err := exec.CommandContext(ctx, "tar", "-C", lower, "--numeric-owner", "-xpf", tarPath).CombinedOutput(); err != nil {
			return fmt.Errorf("extract base %s: %w: %s", tarPath, err, out)
		}
		return os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	})
	if err != nil {
		return "", err
	}
	return lower, nil
}

// buildBase runs debootstrap into a scratch folder beside the cache, strips
// what must not be shared (downloaded .debs, host keys) and tars it.
func buildBase(ctx context.Context, dir, tarPath string) error {
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	args := []string{"--variant=minbase", "--include=" + basePackages, "bookworm", root}
	if m := aptMirror(); m != "" {
		args = append(args, m)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %w: %s", err, tail(out, 2000))
	}
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, f := range append(debs, keys...) {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("strip base: %w", err)
		}
	}
	tmp := tarPath + ".tmp"
	if out, err := exec.CommandContext(ctx, "tar", "-C", root, "--numeric-owner", "-cpf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tar base: %w: %s", err, out)
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		return fmt.Errorf("publish base tar: %w", err)
	}
	return nil
}

// aptMirror reads the Debian mirror this machine's own apt uses, so the
// test bed follows the machine's configuration; "" lets debootstrap choose.
func aptMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		if m := mirrorFromDeb822(f); m != "" {
			return m
		}
	}
	return mirrorFromList("/etc/apt/sources.list")
}

// mirrorFromList returns the URI of a one-line-style "deb" entry for bookworm.
func mirrorFromList(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		rest := fields[1:]
		// Skip an options block such as [arch=amd64 signed-by=...].
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
				rest = rest[1:]
			}
			if len(rest) > 0 {
				rest = rest[1:]
			}
		}
		if len(rest) >= 2 && rest[1] == "bookworm" {
			return rest[0]
		}
	}
	return ""
}

// mirrorFromDeb822 returns the URI of a stanza that serves the bookworm suite.
func mirrorFromDeb822(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, stanza := range strings.Split(string(data), "\n\n") {
		var uri string
		var bookworm, deb bool
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			switch strings.TrimSpace(k) {
			case "URIs":
				if f := strings.Fields(v); len(f) > 0 {
					uri = f[0]
				}
			case "Suites":
				for _, s := range strings.Fields(v) {
					bookworm = bookworm || s == "bookworm"
				}
			case "Types":
				deb = strings.Contains(" "+v+" ", " deb ")
			}
		}
		if uri != "" && bookworm && deb {
			return uri
		}
	}
	return ""
}

// tail keeps the end of long tool output for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
