package targets

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
)

// Defaults of the artifact driver.
const (
	DefaultArtifactKeep     = 3
	DefaultArtifactMaxBytes = 1 << 30
	DefaultArtifactTimeout  = 10 * time.Minute
	// releaseIDLen is how many hex digits of the sha256 name a release folder.
	releaseIDLen = 12
)

// releaseName matches the release folders the driver itself creates; the
// pruning and restore code touch nothing else under releases/.
var releaseName = regexp.MustCompile(`^[0-9a-f]{12}$`)

// sha256Hex matches a declared sha256 digest.
var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ArtifactDriver deploys a versioned archive to a folder on the host:
// NAME/releases/<first 12 hex of sha256>/ holds each version, NAME/current
// is a symlink switched atomically to the declared one. The daemon, not the
// host, downloads and checks the archive (hosts often have no route out), so
// nothing reaches the host before the sha256 and every entry are accepted.
type ArtifactDriver struct {
	// Client downloads http(s) artifacts; nil means a plain client. Its own
	// timeout, if any, applies in addition to Timeout.
	Client *http.Client
	// Timeout bounds one download (0: DefaultArtifactTimeout).
	Timeout time.Duration
	// MaxBytes bounds both the download and the unpacked size (0: DefaultArtifactMaxBytes).
	MaxBytes int64
	// TempDir holds downloads while they are checked ("" means the system's).
	TempDir string

	// cache shares one download among the hosts of a rollout.
	cache artifactCache
}

var _ Driver = (*ArtifactDriver)(nil)

// Kind implements Driver.
func (d *ArtifactDriver) Kind() string { return "artifact" }

// ArtifactSpec deploys an archive to the named folder: each version in
// releases/<sha256 prefix>, and a "current" symlink switched atomically.
type ArtifactSpec struct {
	URL    string `yaml:"url" json:"url"`
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Format is tar, tar.gz or zip; guessed from the URL when empty.
	Format string `yaml:"format" json:"format,omitempty"`
	// Keep is how many releases stay on the host (0: 3).
	Keep  int    `yaml:"keep" json:"keep,omitempty"`
	Owner string `yaml:"owner" json:"owner,omitempty"`
}

// NewSpec returns an empty artifact spec.
func (*ArtifactDriver) NewSpec() any { return &ArtifactSpec{} }

// Validate is the artifact kind's one validation.
func (*ArtifactDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateArtifact)
}

func validateArtifact(name string, s *ArtifactSpec) []config.Problem {
	var p problems
	p.path("", "artifact path", name)
	p.required("artifact", "url", s.URL)
	if s.URL != "" {
		if err := config.CheckURL(s.URL, "http", "https"); err != nil {
			p.add("url", "url: %v", err)
		}
	}
	p.required("artifact", "sha256", s.SHA256)
	if s.SHA256 != "" && !sha256Hex.MatchString(s.SHA256) {
		p.add("sha256", "sha256: expected 64 lowercase hexadecimal digits")
	}
	p.oneOf("format", s.Format, "tar", "tar.gz", "tgz", "zip")
	if s.Keep < 0 {
		p.add("keep", "keep: must not be negative")
	}
	if s.Owner != "" {
		user, group, _ := strings.Cut(s.Owner, ":")
		if (user == "" || ownerRe.MatchString(user)) && (group == "" || ownerRe.MatchString(group)) && user+group != "" {
			return p
		}
		p.add("owner", "owner: %q is not OWNER, OWNER:GROUP or :GROUP (names or numeric ids)", s.Owner)
	}
	return p
}

func artifactSpecOf(r config.Resource) ArtifactSpec {
	if s, ok := r.Spec.(*ArtifactSpec); ok && s != nil {
		return *s
	}
	return ArtifactSpec{}
}

// wantRelease is the release folder name of the declared sha256.
func wantRelease(s ArtifactSpec) string {
	sum := strings.ToLower(s.SHA256)
	if len(sum) < releaseIDLen {
		return sum
	}
	return sum[:releaseIDLen]
}

// Probe implements Driver. It prints where current points, whether that
// target is a directory, and the release folders present.
func (d *ArtifactDriver) Probe(r config.Resource, root string) string {
	if _, err := d.checkSpec(r); err != nil {
		return probeError(err)
	}
	p, err := hostPath(root, r.Name)
	if err != nil {
		return probeError(err)
	}
	return `d=` + shq(p) + `
if [ -d "$d" ]; then echo dir=1; fi
if [ -L "$d/current" ]; then printf 'current=%s\n' "$(readlink "$d/current")"; if [ -d "$d/current/" ]; then echo ok=1; fi; fi
if [ -d "$d/releases" ]; then for r in "$d/releases"/*; do if [ -d "$r" ]; then printf 'release=%s\n' "${r##*/}"; fi; done; fi
`
}

// Parse implements Driver. Fields: current (the symlink's target), ok ("1"
// when it leads to a folder), releases (comma-separated, sorted), dir.
func (d *ArtifactDriver) Parse(r config.Resource, out []byte) (State, error) {
	st := State{Fields: map[string]string{}}
	var releases []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return State{}, fmt.Errorf("parse artifact probe of %s: unexpected line %q", r.Name, line)
		}
		switch k {
		case "dir", "ok":
			st.Fields[k] = v
		case "current":
			st.Present = true
			st.Fields[k] = v
		case "release":
			if releaseName.MatchString(v) {
				releases = append(releases, v)
			}
		default:
			return State{}, fmt.Errorf("parse artifact probe of %s: unknown key %q", r.Name, k)
		}
	}
	sort.Strings(releases)
	if len(releases) > 0 {
		st.Fields["releases"] = strings.Join(releases, ",")
	}
	return st, nil
}

// query describes an artifact for native observation: its folder.
func (d *ArtifactDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := d.checkSpec(r); err != nil {
		return q, errShellProbe
	}
	return pathQuery(q, r, root)
}

// observeNative prints what the probe prints: "dir=1" when the folder
// exists, where its current link points and "ok=1" when that leads to a
// folder, and each release folder.
func (*ArtifactDriver) observeNative(_ *observation, q Query) ([]byte, error) {
	var b bytes.Buffer
	if isDir(q.Path) {
		b.WriteString("dir=1\n")
	}
	cur := filepath.Join(q.Path, "current")
	if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(cur)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "current=%s\n", target)
		if isDir(cur + "/") {
			b.WriteString("ok=1\n")
		}
	}
	rels := filepath.Join(q.Path, "releases")
	if isDir(rels) {
		entries, err := os.ReadDir(rels)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			// The probe's glob: no dot names, links followed.
			if !strings.HasPrefix(e.Name(), ".") && isDir(filepath.Join(rels, e.Name())) {
				fmt.Fprintf(&b, "release=%s\n", e.Name())
			}
		}
	}
	return b.Bytes(), nil
}

// isDir is the shell's [ -d p ]: a folder, links followed.
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func hasRelease(st State, rel string) bool {
	for _, r := range strings.Split(st.Fields["releases"], ",") {
		if r == rel {
			return true
		}
	}
	return false
}

// Diff implements Driver: the resource is in place when current points at
// the declared release and that release is a folder.
func (d *ArtifactDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Action: NoChange, Before: observed}
	want := "releases/" + wantRelease(artifactSpecOf(r))
	cur := observed.Fields["current"]
	switch {
	case !observed.Present:
		c.Action = Create
		c.Diff = "current: (none) -> " + want
	case cur != want:
		c.Action = Update
		c.Diff = "current: " + cur + " -> " + want
	case observed.Fields["ok"] != "1":
		c.Action = Update
		c.Diff = "current: " + cur + " (missing) -> " + want
	}
	return c
}

func (d *ArtifactDriver) checkSpec(r config.Resource) (ArtifactSpec, error) {
	s, err := specOf(r, validateArtifact)
	if err != nil {
		return ArtifactSpec{}, err
	}
	return *s, nil
}

// Apply implements Driver. A release already on the host is switched to
// without downloading anything; otherwise the archive is fetched, checked
// and streamed to the host, unpacked beside its final place and renamed.
func (d *ArtifactDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, err := d.checkSpec(r)
	if err != nil {
		return err
	}
	rel := wantRelease(s)
	var stdin []byte
	if !hasRelease(observed, rel) {
		stdin, err = d.cache.get(ctx, s.SHA256, func() ([]byte, error) { return d.prepare(ctx, s) })
		if err != nil {
			return fmt.Errorf("apply artifact %s: %w", r.Name, err)
		}
	}
	keep := s.Keep
	if keep == 0 {
		keep = DefaultArtifactKeep
	}
	dir, err := hostPath(t.Root(), r.Name)
	if err != nil {
		return err
	}
	script := "set -eu\nd=" + shq(dir) + "\nwant=" + rel + "\nkeep=" + strconv.Itoa(keep) + "\n" +
		"mkdir -p \"$d/releases\"\nrm -rf \"$d/releases/.tmp-\"*\n"
	if stdin != nil {
		script += artifactUnpack(s.Owner)
	}
	script += artifactSwitch + artifactPrune
	res, err := t.Run(ctx, script, stdin)
	if err != nil {
		return fmt.Errorf("apply artifact %s: %w", r.Name, err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("apply artifact %s: exit %d: %s", r.Name, res.Exit, trimOutput(res.Stderr))
	}
	return nil
}

// artifactUnpack unpacks stdin beside the release's final place, then
// renames it into place, so a failed unpack leaves no half release behind.
func artifactUnpack(owner string) string {
	s := `tmp="$d/releases/.tmp-$want"
mkdir "$tmp"
if ! tar -x -z -o -f - -C "$tmp"; then rm -rf "$tmp"; echo "unpack into $tmp failed" >&2; exit 1; fi
`
	if owner != "" {
		s += `if ! chown -R ` + shq(owner) + ` "$tmp"; then rm -rf "$tmp"; exit 1; fi
`
	}
	return s + `if [ -d "$d/releases/$want" ]; then rm -rf "$tmp"; else mv -T "$tmp" "$d/releases/$want"; fi
`
}

// artifactSwitch points current at the wanted release with one rename, and
// touches the release so that its modification time orders releases by use.
const artifactSwitch = `if [ ! -d "$d/releases/$want" ]; then echo "release $want is missing" >&2; exit 1; fi
prev=$(readlink "$d/current" 2>/dev/null || true)
touch "$d/releases/$want"
ln -sfn "releases/$want" "$d/.current.tmp"
mv -T "$d/.current.tmp" "$d/current"
`

// artifactPrune keeps the newest $keep releases, and always the current one
// and the one it replaced, so that a restore is an instant switch.
const artifactPrune = `n=0
for r in $(ls -1t "$d/releases"); do
	case "$r" in *[!0-9a-f]*) continue ;; esac
	[ ${#r} -eq 12 ] || continue
	n=$((n+1))
	if [ $n -gt $keep ] && [ "$r" != "$want" ] && [ "releases/$r" != "$prev" ]; then rm -rf "$d/releases/$r"; fi
done
`

// Restore implements Driver: current points back where it pointed (or is
// removed), and releases that appeared since the snapshot are removed.
func (d *ArtifactDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	var keep []string
	for _, rel := range strings.Split(snapshot.Fields["releases"], ",") {
		if releaseName.MatchString(rel) {
			keep = append(keep, rel)
		}
	}
	dir, err := hostPath(t.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("restore artifact %s: %w", r.Name, err)
	}
	script := "set -eu\nd=" + shq(dir) + "\nkeep=' " + strings.Join(keep, " ") + " '\n"
	if snapshot.Present {
		script += "target=" + shq(snapshot.Fields["current"]) + `
if ! (cd "$d" && [ -d "$target/" ]); then echo "cannot switch back to $target: it is gone" >&2; exit 1; fi
ln -sfn "$target" "$d/.current.tmp"
mv -T "$d/.current.tmp" "$d/current"
`
	} else {
		script += `if [ -L "$d/current" ]; then rm -f "$d/current"; fi
`
	}
	script += `cur=$(readlink "$d/current" 2>/dev/null || true)
if [ -d "$d/releases" ]; then
	for r in $(ls -1 "$d/releases"); do
		case "$r" in *[!0-9a-f]*) continue ;; esac
		[ ${#r} -eq 12 ] || continue
		case "$keep" in *" $r "*) continue ;; esac
		if [ "releases/$r" != "$cur" ]; then rm -rf "$d/releases/$r"; fi
	done
	rm -rf "$d/releases/.tmp-"*
	rmdir "$d/releases" 2>/dev/null || true
fi
`
	if snapshot.Fields["dir"] != "1" {
		script += "rmdir \"$d\" 2>/dev/null || true\n"
	}
	return runScript(ctx, t, "restore artifact "+r.Name, script)
}
