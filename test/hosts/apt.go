package hosts

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/driftless/driftless/test/need"
)

// Deb describes a tiny Debian package that BuildDeb makes with dpkg-deb.
type Deb struct {
	Name    string
	Version string
	// Files maps absolute paths inside the package to their contents.
	Files map[string]string
	// Depends is the control file's Depends field, if any.
	Depends string
	// Postinst, if set, is the maintainer script run after unpacking.
	Postinst string
}

// HelloDebs are dl-hello 1.0 and 2.0, each installing
// /usr/share/dl-hello/VERSION with its version.
func HelloDebs() []Deb {
	var debs []Deb
	for _, v := range []string{"1.0", "2.0"} {
		debs = append(debs, Deb{Name: "dl-hello", Version: v, Files: map[string]string{"/usr/share/dl-hello/VERSION": v + "\n"}})
	}
	return debs
}

// BuildDeb builds d into dir and returns the .deb's path.
func BuildDeb(dir string, d Deb) (string, error) {
	if d.Name == "" || d.Version == "" {
		return "", errors.New("build deb: name and version are required")
	}
	tree, err := os.MkdirTemp(dir, "deb-")
	if err != nil {
		return "", fmt.Errorf("build deb %s: %w", d.Name, err)
	}
	defer os.RemoveAll(tree)
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: driftless tests <tests@invalid>\nDescription: driftless test package %s\n",
		d.Name, d.Version, d.Name)
	if d.Depends != "" {
		control += "Depends: " + d.Depends + "\n"
	}
	files := map[string]string{"DEBIAN/control": control}
	for p, c := range d.Files {
		files[strings.TrimPrefix(p, "/")] = c
	}
	if d.Postinst != "" {
		files["DEBIAN/postinst"] = d.Postinst
	}
	if err := writeTree(tree, files, "DEBIAN/postinst"); err != nil {
		return "", fmt.Errorf("build deb %s: %w", d.Name, err)
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_all.deb", d.Name, d.Version))
	if err := run("dpkg-deb", "-Zgzip", "--root-owner-group", "--build", tree, out); err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", d.Name, d.Version, err)
	}
	return out, nil
}

// writeTree writes files (a path below root -> its content) under root,
// creating folders; the paths listed in executable get mode 0755.
func writeTree(root string, files map[string]string, executable ...string) error {
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if slices.Contains(executable, p) {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			return err
		}
	}
	return nil
}

// aptRepo is the lab's flat apt repository, served from the root namespace.
type aptRepo struct {
	dir  string
	port int
	srv  *http.Server
	done chan struct{}
}

// AptRepo adds packages to the lab's flat apt repository (creating and
// serving it on BridgeIP on first use) and points every host's
// sources.list at it, those started before and after. It returns the
// repository's URL. Hosts then run `apt-get update` as usual.
func (l *Lab) AptRepo(debs ...Deb) string {
	l.t.Helper()
	url, err := l.aptRepo(debs)
	if err != nil {
		l.t.Fatalf("apt repository: %v", err)
	}
	return url
}

func (l *Lab) aptRepo(debs []Deb) (string, error) {
	if _, err := exec.LookPath("dpkg-scanpackages"); err != nil {
		need.Missing(l.t, "the apt repository needs dpkg-scanpackages (dpkg-dev), which is not installed")
	}
	repo, err := l.repoServer()
	if err != nil {
		return "", err
	}
	for _, d := range debs {
		if _, err := BuildDeb(repo.dir, d); err != nil {
			return "", err
		}
	}
	if err := indexRepo(repo.dir); err != nil {
		return "", err
	}
	l.mu.Lock()
	l.deb = true
	l.mu.Unlock()
	list := l.sourcesList()
	for _, h := range l.Hosts() {
		if h.rpm {
			continue
		}
		if err := os.WriteFile(filepath.Join(h.Root, "etc/apt/sources.list"), []byte(list), 0o644); err != nil {
			return "", fmt.Errorf("point %s at the repository: %w", h.Name, err)
		}
	}
	return fmt.Sprintf("http://%s:%d/", l.BridgeIP, repo.port), nil
}

// repoServer returns the lab's package repository server, starting it on
// the bridge on first use. It serves the apt repository at / and the rpm
// repository at /rpm/.
func (l *Lab) repoServer() (*aptRepo, error) {
	l.mu.Lock()
	repo := l.apt
	l.mu.Unlock()
	if repo != nil {
		return repo, nil
	}
	dir := filepath.Join(l.dir, "apt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create repository folder: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(l.BridgeIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen on the bridge: %w", err)
	}
	repo = &aptRepo{dir: dir, port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{}),
		srv: &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(repo.done)
		repo.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at teardown
	}()
	l.mu.Lock()
	l.apt = repo
	l.mu.Unlock()
	return repo, nil
}

// stop shuts the repository's server down and waits for it.
func (r *aptRepo) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx) //nolint:errcheck // best effort at teardown
	<-r.done
}

// indexRepo writes Packages, Packages.gz and a Release file listing their
// hashes, which apt needs even from a trusted repository.
func indexRepo(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "-m", ".", "/dev/null")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pkgs, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("dpkg-scanpackages: %w: %s", err, stderr.String())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pkgs) //nolint:errcheck // writes to memory
	zw.Close()
	index := map[string][]byte{"Packages": pkgs, "Packages.gz": gz.Bytes()}
	names := make([]string, 0, len(index))
	for n := range index {
		names = append(names, n)
	}
	sort.Strings(names)
	var rel strings.Builder
	fmt.Fprintf(&rel, "Origin: driftless-test\nLabel: driftless-test\nDate: %s\nSHA256:\n", time.Now().UTC().Format(time.RFC1123))
	for _, n := range names {
		fmt.Fprintf(&rel, " %x %d %s\n", sha256.Sum256(index[n]), len(index[n]), n)
	}
	index["Release"] = []byte(rel.String())
	for n, data := range index {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			return fmt.Errorf("write repository %s: %w", n, err)
		}
	}
	return nil
}

// sourcesList is the sources.list every host gets: the lab's repository
// when one is served, otherwise nothing (hosts have no route out).
func (l *Lab) sourcesList() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.apt == nil || !l.deb {
		return "# no repository: test hosts have no route out\n"
	}
	return fmt.Sprintf("deb [trusted=yes] http://%s:%d ./\n", l.BridgeIP, l.apt.port)
}
