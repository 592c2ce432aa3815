package targets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
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

var (
	_ Driver     = (*ArtifactDriver)(nil)
	_ NativeKind = (*ArtifactDriver)(nil)
)

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

// Parse implements Driver: it reads what observeNative prints. Fields:
// current (the symlink's target), ok ("1" when it leads to a folder),
// releases (comma-separated, sorted), dir.
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

// query describes an artifact for native observation: its folder. An
// invalid resource is refused with its validation's error.
func (d *ArtifactDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := d.checkSpec(r); err != nil {
		return q, err
	}
	p, err := hostPath(root, r.Name)
	if err != nil {
		return q, err
	}
	q.Path = p
	return q, nil
}

// observeNative prints "dir=1" when the folder exists, where its current
// link points and "ok=1" when that leads to a folder, and each release
// folder (no dot names, links followed, as a shell glob and [ -d ] see
// them).
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
// without downloading anything; otherwise the archive is fetched and
// checked here, and sent with the step to the transport's native apply
// (the agent, or the local transport), which checks it again, unpacks it
// beside its final place and renames it there.
func (d *ArtifactDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, err := d.checkSpec(r)
	if err != nil {
		return err
	}
	n, ok := t.(NativeApplier)
	if !ok {
		return onlyNative(ctx, t, StepApply, r, observed)
	}
	var archive *io.SectionReader
	if !hasRelease(observed, wantRelease(s)) {
		b, err := d.cache.get(ctx, s.SHA256, func() ([]byte, error) { return d.prepare(ctx, s) })
		if err != nil {
			return fmt.Errorf("apply artifact %s: %w", r.Name, err)
		}
		archive = io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
	}
	_, err = n.ApplyNative(ctx, []Step{{Op: StepApply, Resource: r, State: observed, Archive: archive}})
	return err
}

// Restore implements Driver: current points back where it pointed (or is
// removed), and releases that appeared since the snapshot are removed, on
// the host through the transport's native apply (RestoreNative).
func (d *ArtifactDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative is Apply on the host for a release already there: current
// switched to it.
func (d *ArtifactDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	return d.applyArchive(ctx, h, r, observed, nil)
}

// applyArchive is Apply on the host. The archive, when there is one, is
// refused unless its sha256 is the declared one; it is unpacked with the
// daemon's rules (archiveCheck) into a hidden folder beside the release's
// final place, given to the declared owner and renamed there, so a
// refused or failed unpack leaves nothing behind. Then current is
// switched with one rename, and old releases are pruned.
func (d *ArtifactDriver) applyArchive(ctx context.Context, h *Host, r config.Resource, _ State, archive *io.SectionReader) error {
	s := artifactSpecOf(r)
	dir, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("apply artifact %s: %w", r.Name, err)
	}
	rel := wantRelease(s)
	if archive != nil {
		if err := checkSum(archive, s.SHA256); err != nil {
			return fmt.Errorf("apply artifact %s: refused the archive received, nothing changed: %w", r.Name, err)
		}
	}
	rels := filepath.Join(dir, "releases")
	made, err := mkdirAll(rels)
	if err != nil {
		return fmt.Errorf("apply artifact %s: %w", r.Name, err)
	}
	if err := removeTemps(rels); err != nil {
		return fmt.Errorf("apply artifact %s: %w", r.Name, err)
	}
	if archive != nil {
		if err := d.unpack(ctx, archive, s, rels, rel); err != nil {
			// Nothing of a failed unpack stays, not even the folders it made.
			for _, p := range made {
				_ = os.Remove(p)
			}
			return fmt.Errorf("apply artifact %s: %w", r.Name, err)
		}
	}
	if err := switchRelease(dir, rel, keepOf(s)); err != nil {
		return fmt.Errorf("apply artifact %s: %w", r.Name, err)
	}
	return nil
}

func keepOf(s ArtifactSpec) int {
	if s.Keep == 0 {
		return DefaultArtifactKeep
	}
	return s.Keep
}

func (d *ArtifactDriver) maxBytes() int64 {
	if d.MaxBytes <= 0 {
		return DefaultArtifactMaxBytes
	}
	return d.MaxBytes
}

// checkSum refuses an archive whose sha256 is not the declared one.
func checkSum(archive *io.SectionReader, want string) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(archive, 0, archive.Size())); err != nil {
		return fmt.Errorf("hash the archive: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 mismatch: declared %s, received %s", want, got)
	}
	return nil
}

// mkdirAll is mkdir -p; it returns the folders it made, deepest first.
func mkdirAll(p string) ([]string, error) {
	var made []string
	for q := p; ; q = filepath.Dir(q) {
		if _, err := os.Lstat(q); err == nil || q == filepath.Dir(q) {
			break
		}
		made = append(made, q)
	}
	if err := os.MkdirAll(p, 0o777); err != nil {
		return nil, err
	}
	return made, nil
}

// removeTemps removes what an interrupted unpack left in releases/.
func removeTemps(rels string) error {
	tmps, err := filepath.Glob(filepath.Join(rels, ".tmp-*"))
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			return err
		}
	}
	return nil
}

// unpack checks and unpacks the archive into releases/.tmp-REL, hands it
// to the declared owner (as chown -R: links themselves, not what they
// point to) and renames it to releases/REL, unless that appeared
// meanwhile.
func (d *ArtifactDriver) unpack(ctx context.Context, archive *io.SectionReader, s ArtifactSpec, rels, rel string) error {
	head := make([]byte, 512)
	n, _ := archive.ReadAt(head, 0)
	format, err := archiveFormat(s.Format, s.URL, head[:n])
	if err != nil {
		return err
	}
	tmp := filepath.Join(rels, ".tmp-"+rel)
	if err := os.Mkdir(tmp, 0o777); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	x := &extractor{ctx: ctx, root: tmp}
	err = checkArchive(archive, archive.Size(), format, d.maxBytes(), x)
	if err == nil {
		err = x.finish()
	}
	if err == nil && s.Owner != "" {
		err = chownTree(tmp, s.Owner)
	}
	if err == nil && !isDir(filepath.Join(rels, rel)) {
		err = os.Rename(tmp, filepath.Join(rels, rel))
	}
	if rerr := os.RemoveAll(tmp); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("unpack into %s: %w", tmp, err)
	}
	return nil
}

// chownTree gives root and everything in it to owner (OWNER, OWNER:GROUP,
// OWNER: for the owner's login group, or :GROUP), as chown -R does: links
// themselves, never what they point to.
func chownTree(root, owner string) error {
	u, g, colon := strings.Cut(owner, ":")
	uid, gid, err := resolveOwner(u, g)
	if err != nil {
		return fmt.Errorf("chown to %s: %w", owner, err)
	}
	if colon && g == "" && u != "" {
		acc, err := user.LookupId(strconv.Itoa(uid))
		if err != nil {
			return fmt.Errorf("chown to %s: the login group of %s: %w", owner, u, err)
		}
		if gid, err = strconv.Atoi(acc.Gid); err != nil {
			return fmt.Errorf("chown to %s: group id %q: %w", owner, acc.Gid, err)
		}
	}
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown to %s: %w", owner, err)
		}
		return nil
	})
}

// switchRelease points current at releases/REL with one rename, touches
// the release so that modification times order releases by use, and
// prunes: the newest keep releases stay, and always the current one and
// the one it replaced, so that a restore is an instant switch.
func switchRelease(dir, rel string, keep int) error {
	rels := filepath.Join(dir, "releases")
	p := filepath.Join(rels, rel)
	if !isDir(p) {
		return fmt.Errorf("release %s is missing", rel)
	}
	prev, _ := os.Readlink(filepath.Join(dir, "current"))
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		return err
	}
	if err := switchCurrent(dir, "releases/"+rel); err != nil {
		return err
	}
	ents, err := os.ReadDir(rels)
	if err != nil {
		return err
	}
	type release struct {
		name  string
		mtime time.Time
	}
	var rs []release
	for _, e := range ents {
		if !releaseName.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rs = append(rs, release{e.Name(), fi.ModTime()})
	}
	// Newest first, as ls -t.
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].mtime.After(rs[j].mtime) })
	for i, r := range rs {
		if i >= keep && r.name != rel && "releases/"+r.name != prev {
			if err := os.RemoveAll(filepath.Join(rels, r.name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// switchCurrent points dir/current at target with one rename of a link
// made beside it.
func switchCurrent(dir, target string) error {
	tmp := filepath.Join(dir, ".current.tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "current"))
}

// RestoreNative is Restore on the host: current points back where it
// pointed (or is removed), and releases that appeared since the snapshot
// are removed, with what interrupted unpacks left; the folders the apply
// made go when they are empty.
func (*ArtifactDriver) RestoreNative(_ context.Context, h *Host, r config.Resource, snapshot State) error {
	dir, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("restore artifact %s: %w", r.Name, err)
	}
	if err := restoreRelease(dir, snapshot); err != nil {
		return fmt.Errorf("restore artifact %s: %w", r.Name, err)
	}
	return nil
}

func restoreRelease(dir string, snapshot State) error {
	cur := filepath.Join(dir, "current")
	if snapshot.Present {
		target := snapshot.Fields["current"]
		p := target
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if !isDir(p + "/") {
			return fmt.Errorf("cannot switch back to %s: it is gone", target)
		}
		if err := switchCurrent(dir, target); err != nil {
			return err
		}
	} else if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := os.Remove(cur); err != nil {
			return err
		}
	}
	keep := map[string]bool{}
	for _, rel := range strings.Split(snapshot.Fields["releases"], ",") {
		keep[rel] = true
	}
	now, _ := os.Readlink(cur)
	rels := filepath.Join(dir, "releases")
	if isDir(rels) {
		ents, err := os.ReadDir(rels)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if releaseName.MatchString(e.Name()) && !keep[e.Name()] && "releases/"+e.Name() != now {
				if err := os.RemoveAll(filepath.Join(rels, e.Name())); err != nil {
					return err
				}
			}
		}
		if err := removeTemps(rels); err != nil {
			return err
		}
		_ = syscall.Rmdir(rels)
	}
	if snapshot.Fields["dir"] != "1" {
		_ = syscall.Rmdir(dir)
	}
	return nil
}
