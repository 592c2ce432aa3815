package hosts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/driftless/driftless/test/need"
)

// rpmLayerVersion names the cached rpm layer; bump it when its build steps
// change. The layer belongs to one base, so the base's version is part of
// its name.
const rpmLayerVersion = "rpm-v1"

// rpmLayerScript runs inside the layer's chroot: Debian's own dnf and rpm,
// an rpm database in the place rpm-based systems keep it, and no dpkg or
// apt left, so the host is rpm-only to anything that looks.
const rpmLayerScript = `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update >/dev/null
apt-get install -y -q --no-install-recommends dnf rpm >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
mkdir -p /etc/rpm /etc/yum.repos.d
echo '%_dbpath /var/lib/rpm' > /etc/rpm/macros
rpm --initdb
rm -f /usr/bin/dpkg /usr/bin/dpkg-query /usr/bin/dpkg-deb /usr/bin/apt /usr/bin/apt-get /usr/bin/apt-cache
`

// rpmLayer returns the cached overlay layer that turns the base into an
// rpm host, building it once per cache. It is an overlay upper folder: the
// files dnf and rpm add, and whiteouts for dpkg and apt.
func rpmLayer(ctx context.Context, logf func(string, ...any), base string) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	layer := filepath.Join(dir, rpmLayerVersion+"-"+baseVersion)
	err = withFlock(filepath.Join(dir, "rpm.lock"), func() error {
		if _, err := os.Stat(layer + ".done"); err == nil {
			return nil
		}
		logf("building the rpm layer of the test-host base (once per cache, a few minutes)")
		if err := os.RemoveAll(layer); err != nil {
			return fmt.Errorf("remove partial rpm layer: %w", err)
		}
		if err := buildRPMLayer(ctx, dir, base, layer); err != nil {
			return fmt.Errorf("build rpm layer: %w", err)
		}
		return os.WriteFile(layer+".done", []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	})
	if err != nil {
		return "", err
	}
	return layer, nil
}

// buildRPMLayer mounts an overlay over the base, installs dnf and rpm in
// it with the base's own apt, and keeps the overlay's upper folder.
func buildRPMLayer(ctx context.Context, dir, base, layer string) error {
	work, err := os.MkdirTemp(dir, "build-rpm-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(work)
	upper, ovl, merged := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, ovl, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	defer unmountUnder(merged)
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return fmt.Errorf("read the machine's resolver configuration: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	script := strings.Join([]string{
		"set -e",
		"M=" + shellQuote(merged),
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s \"$M\"", base, upper, ovl),
		`mount -t proc proc "$M/proc"`,
		`mount --rbind /dev "$M/dev"`,
		// apt needs the machine's name service to reach the mirror the
		// base came from; the file is removed again before the layer is kept.
		`rm -f "$M/etc/resolv.conf"`,
		`cat > "$M/etc/resolv.conf"`,
		`chroot "$M" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -c ` + shellQuote(rpmLayerScript),
		`rm -f "$M/etc/resolv.conf"`,
	}, "\n")
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Stdin = strings.NewReader(string(resolv))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install dnf and rpm: %w: %s", err, tail(out, 2000))
	}
	if err := os.Rename(upper, layer); err != nil {
		return fmt.Errorf("publish rpm layer: %w", err)
	}
	return nil
}

// RPM describes a tiny noarch rpm package that BuildRPM makes with rpmbuild.
type RPM struct {
	Name    string
	Version string
	// Files maps absolute paths inside the package to their contents.
	Files map[string]string
}

// HelloRPMs are dl-hello 1.0-1 and 2.0-1, the rpm twins of HelloDebs.
func HelloRPMs() []RPM {
	var rpms []RPM
	for _, d := range HelloDebs() {
		rpms = append(rpms, RPM{Name: d.Name, Version: d.Version, Files: d.Files})
	}
	return rpms
}

// BuildRPM builds p (release 1) into dir and returns the .rpm's path.
func BuildRPM(dir string, p RPM) (string, error) {
	if p.Name == "" || p.Version == "" {
		return "", errors.New("build rpm: name and version are required")
	}
	top, err := os.MkdirTemp(dir, "rpmbuild-")
	if err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	defer os.RemoveAll(top)
	tree := filepath.Join(top, "SOURCES", "tree")
	if err := writeTree(tree, p.Files); err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	paths := slices.Sorted(maps.Keys(p.Files))
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: 1
Summary: driftless test package %s
License: MIT
BuildArch: noarch
AutoReqProv: no
%%description
driftless test package %s
%%install
cp -a %%{_sourcedir}/tree/. %%{buildroot}/
%%files
%s
`, p.Name, p.Version, p.Name, p.Name, strings.Join(paths, "\n"))
	specFile := filepath.Join(top, p.Name+".spec")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	if err := run("rpmbuild", "--quiet", "--define", "_topdir "+top, "--define", "_rpmdir "+dir,
		"--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm", "-bb", specFile); err != nil {
		return "", fmt.Errorf("build rpm %s %s: %w", p.Name, p.Version, err)
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%s-1.noarch.rpm", p.Name, p.Version)), nil
}

// RPMRepo adds packages to the lab's rpm repository (served beside the apt
// repository, under /rpm/) and points the dnf of every rpm host at it,
// those started before and after. It returns the repository's URL.
func (l *Lab) RPMRepo(rpms ...RPM) string {
	l.t.Helper()
	url, err := l.rpmRepo(rpms)
	if err != nil {
		l.t.Fatalf("rpm repository: %v", err)
	}
	return url
}

func (l *Lab) rpmRepo(rpms []RPM) (string, error) {
	for _, tool := range []string{"rpmbuild", "createrepo_c"} {
		if _, err := exec.LookPath(tool); err != nil {
			need.Missing(l.t, "the rpm repository needs %s (packages rpm and createrepo-c), which is not installed", tool)
		}
	}
	repo, err := l.repoServer()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(repo.dir, "rpm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create rpm repository folder: %w", err)
	}
	for _, p := range rpms {
		if _, err := BuildRPM(dir, p); err != nil {
			return "", err
		}
	}
	if err := run("createrepo_c", "--quiet", dir); err != nil {
		return "", fmt.Errorf("index rpm repository: %w", err)
	}
	l.mu.Lock()
	l.rpm = true
	l.mu.Unlock()
	repoFile := l.yumRepo()
	for _, h := range l.Hosts() {
		if !h.rpm {
			continue
		}
		// Rewritten only when it changes: dnf treats a repository file
		// newer than its cache as expiring the cache, which would hide
		// whether a driver refreshes stale metadata itself.
		path := filepath.Join(h.Root, "etc/yum.repos.d/driftless-test.repo")
		if old, err := os.ReadFile(path); err == nil && string(old) == repoFile {
			continue
		}
		if err := os.WriteFile(path, []byte(repoFile), 0o644); err != nil {
			return "", fmt.Errorf("point %s at the rpm repository: %w", h.Name, err)
		}
	}
	return fmt.Sprintf("http://%s:%d/rpm/", l.BridgeIP, repo.port), nil
}

// yumRepo is the dnf repository file every rpm host gets: the lab's rpm
// repository once one is served, otherwise a comment.
func (l *Lab) yumRepo() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.apt == nil || !l.rpm {
		return "# no repository: test hosts have no route out\n"
	}
	return fmt.Sprintf("[driftless-test]\nname=driftless test packages\nbaseurl=http://%s:%d/rpm/\ngpgcheck=0\nenabled=1\n",
		l.BridgeIP, l.apt.port)
}
