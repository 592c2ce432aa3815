package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// basePackages are packages the test-host base has installed, so that a
// package resource with state present observes no drift on every host.
var basePackages = []string{
	"openssh-server", "iproute2", "nftables", "dbus", "sudo", "ca-certificates", "systemd",
	"systemd-sysv", "bash", "coreutils", "dpkg", "apt", "libc6", "tar", "gzip", "grep", "sed",
	"findutils", "mawk", "debianutils", "base-files", "login", "passwd", "util-linux", "hostname",
	"init-system-helpers", "perl-base", "diffutils", "ncurses-base", "mount", "procps",
}

// baseServices are systemd units of the base. Kind-1 hosts do not run
// systemd, so their probes fail and are reported per resource. Units with a
// SysV init script (ssh, dbus) are left out: Ansible's service module would
// fall back to the script and answer where driftless reports no systemd.
var baseServices = []string{
	"nftables", "systemd-journald", "systemd-logind", "systemd-networkd", "systemd-udevd",
	"systemd-tmpfiles-setup", "systemd-sysusers", "e2scrub_reap", "apt-daily", "dpkg-db-backup",
}

// mix is how the declared resources of one host divide among kinds, and how
// many files have drifted before the scan: Changed files hold other
// content, Missing files do not exist.
type mix struct {
	Files, Packages, Services int
	Changed, Missing          int
}

// mixFor divides total resources like a typical server role: mostly files,
// a tenth packages, a twentieth services; a tenth of the files drifted.
func mixFor(total int) mix {
	m := mix{Services: min(total/20, len(baseServices)), Packages: min(total/10, len(basePackages))}
	m.Files = total - m.Services - m.Packages
	m.Changed = m.Files / 17
	m.Missing = m.Files / 17
	return m
}

// Drifted is how many resources a scan must report as changed on each host.
func (m mix) Drifted() int { return m.Changed + m.Missing }

// filePath is the path of declared file i.
func filePath(i int) string { return fmt.Sprintf("/etc/scale/f%03d.conf", i) }

// fileContent is the declared content of file i: a small configuration
// file of about 1 KiB, different for every file.
func fileContent(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# scale benchmark file %d\n", i)
	for j := 0; j < 24; j++ {
		fmt.Fprintf(&b, "option_%02d = value-%d-%d-abcdefghijklmnopq\n", j, i, j)
	}
	return b.String()
}

// resources is the declared state of every host of the fleet.
func (m mix) resources() []config.Resource {
	rs := make([]config.Resource, 0, m.Files+m.Packages+m.Services)
	for i := 0; i < m.Files; i++ {
		rs = append(rs, config.Resource{Kind: "file", Name: filePath(i), Spec: &targets.FileSpec{
			Content: fileContent(i), Mode: "0644", Owner: "root", Group: "root"}})
	}
	for i := 0; i < m.Packages; i++ {
		rs = append(rs, config.Resource{Kind: "package", Name: basePackages[i],
			Spec: &targets.PackageSpec{State: "present"}})
	}
	enabled := true
	for i := 0; i < m.Services; i++ {
		rs = append(rs, config.Resource{Kind: "service", Name: baseServices[i],
			Spec: &targets.ServiceSpec{State: "running", Enabled: &enabled}})
	}
	return rs
}

// seed writes the files of m onto a host's root as the scan must find them:
// the first Changed files with other content, the last Missing not at all,
// the rest as declared.
func (m mix) seed(root string) error {
	dir := filepath.Join(root, "etc/scale")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for i := 0; i < m.Files-m.Missing; i++ {
		content := fileContent(i)
		if i < m.Changed {
			content = strings.Replace(content, "option_03 = ", "option_03 = drifted-", 1)
		}
		p := filepath.Join(root, filePath(i))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("seed %s: %w", p, err)
		}
	}
	return nil
}

// toolTimeout bounds each helper command run on the fleet (nsenter, ip).
const toolTimeout = 30 * time.Second

// pythonPaths are what Ansible's modules need of a Python runtime on a
// host. The test-host base has no python3; the runner is the same Debian
// release, so its runtime works unchanged inside the hosts. The shared
// library directory holds python3-apt, which Ansible's apt module needs.
var pythonPaths = []struct {
	path string
	dir  bool
}{
	{"/usr/bin/python3.11", false},
	{"/usr/lib/python3.11", true},
	{"/usr/lib/python3/dist-packages", true},
}

// lendPython bind-mounts the runner's Python runtime into a running host,
// read-only, inside the host's own mount namespace (the host's mounts are
// private, so a mount made outside after its start would not be seen).
// Nothing is written to the shared base.
func lendPython(h *hosts.Host) error {
	pid, err := hostPid(h)
	if err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, p := range pythonPaths {
		target := filepath.Join(h.Root, p.path)
		if p.dir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("lend python to %s: %w", h.Name, err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("lend python to %s: %w", h.Name, err)
			}
			if err := os.WriteFile(target, nil, 0o755); err != nil {
				return fmt.Errorf("lend python to %s: %w", h.Name, err)
			}
		}
		fmt.Fprintf(&script, "mount --bind '%s' '%s'\nmount -o remount,bind,ro '%s'\n", p.path, target, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-m", "sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lend python to %s: %w: %s", h.Name, err, out)
	}
	return nil
}

// hostPid finds a process of h that lives in the host's mount namespace:
// one of its network namespace whose root is the host's root.
func hostPid(h *hosts.Host) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", h.Netns).Output()
	if err != nil {
		return 0, fmt.Errorf("list processes of %s: %w", h.Name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		root, err := os.Readlink("/proc/" + f + "/root")
		if err == nil && filepath.Clean(root) == filepath.Clean(h.Root) {
			return strconv.Atoi(f)
		}
	}
	return 0, fmt.Errorf("no process of %s runs in its root %s", h.Name, h.Root)
}

// hasPython says whether the runner can lend its Python runtime.
func hasPython() bool {
	for _, p := range pythonPaths {
		if _, err := os.Stat(p.path); err != nil {
			return false
		}
	}
	return true
}

// envInt reads a positive integer from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
