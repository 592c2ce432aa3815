package targets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/driftless/driftless/config"
)

// FileDriver manages regular files: content, mode, owner and group, or
// their absence. Content is written with the transport's atomic WriteFile,
// so a failed apply never leaves a half-written file.
type FileDriver struct{}

var (
	_ Driver   = (*FileDriver)(nil)
	_ Contents = (*FileDriver)(nil)
	_ Writer   = (*FileDriver)(nil)
)

// Desired implements Contents: the declared content, none when the file
// is to be absent.
func (*FileDriver) Desired(r config.Resource, _ State) ([]byte, bool) {
	spec, err := specOf(r, validateFile)
	if err != nil || spec.State == config.Absent {
		return nil, false
	}
	return []byte(spec.Content), true
}

// defaultFileMode is the mode of a created file whose mode is not declared.
const defaultFileMode = "0644"

// createMode is the mode a file (or env file) gets when it is created
// without a declared mode: 0644, but 0600 for a secret one, so that a
// decrypted key is never readable by every user of the host by default.
func createMode(r config.Resource) string {
	if r.IsSecret() {
		return "0600"
	}
	return defaultFileMode
}

// Kind returns "file".
func (*FileDriver) Kind() string { return "file" }

// FileSpec is the declared spec of a regular file. Exactly one of Content,
// Source and Template is set in YAML; the loader reads Source and renders
// Template (config.ContentSpec) so that Content always holds the final
// bytes (unless State is absent).
type FileSpec struct {
	Content  string `yaml:"content" json:"content,omitempty"`
	Source   string `yaml:"source" json:"source,omitempty"`
	Template string `yaml:"template" json:"template,omitempty"`
	Mode     string `yaml:"mode" json:"mode,omitempty"`
	Owner    string `yaml:"owner" json:"owner,omitempty"`
	Group    string `yaml:"group" json:"group,omitempty"`
	State    string `yaml:"state" json:"state,omitempty"`
	// Secret marks content that must never leave the daemon: reports
	// (pull request comments, notifications) show only its size and a
	// keyed hash, even where full diffs are enabled.
	Secret bool `yaml:"secret" json:"secret,omitempty"`
}

var _ config.ContentSpec = (*FileSpec)(nil)

// IsSecret implements config.SecretSpec.
func (s *FileSpec) IsSecret() bool { return s.Secret }

// MarkSecret implements config.SecretSpec.
func (s *FileSpec) MarkSecret() { s.Secret = true }

// ContentFrom implements config.ContentSpec.
func (s *FileSpec) ContentFrom() (source, template string) { return s.Source, s.Template }

// NeedsContent implements config.ContentSpec: a file to be absent has none.
func (s *FileSpec) NeedsContent() bool { return s.State != config.Absent }

// Body implements config.ContentSpec.
func (s *FileSpec) Body() string { return s.Content }

// SetBody implements config.ContentSpec.
func (s *FileSpec) SetBody(content string) { s.Content = content }

// NewSpec returns an empty file spec.
func (*FileDriver) NewSpec() any { return &FileSpec{} }

// Validate is the file kind's one validation. Where the content comes
// from (content, source or template, one of them) is the loader's.
func (*FileDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateFile)
}

func validateFile(name string, s *FileSpec) []config.Problem {
	var p problems
	p.path("", "file path", name)
	p.mode(s.Mode)
	p.owner("owner", s.Owner)
	p.owner("group", s.Group)
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// hashThreshold is the declared size from which a file's observation
// compares hashes before sending content: a converged host then sends a
// few bytes per pass, not its files.
const hashThreshold = 16 << 10

// sameMark stands for the content in a file's observation when the file
// holds exactly the declared bytes. Base64 never starts with "=".
const sameMark = "=same"

// Parse reads the file's observation (observeNative): its stat line,
// then, for a regular file, its content in base64 or sameMark.
func (*FileDriver) Parse(r config.Resource, out []byte) (State, error) {
	st, err := parseFileState(out)
	if err != nil || !st.Present || st.Content == nil {
		return st, err
	}
	if string(st.Content) == sameMark {
		spec, err := specOf(r, validateFile)
		if err != nil {
			return State{}, err
		}
		st.Content = []byte(spec.Content)
	}
	return st, nil
}

// query describes a file for native observation: its path, and the
// SHA-256 of a large declared content, answered with sameMark when the
// file holds exactly it.
func (*FileDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: "file"}
	spec, err := specOf(r, validateFile)
	if err != nil {
		return q, err
	}
	if spec.State != config.Absent && len(spec.Content) >= hashThreshold {
		sum := sha256.Sum256([]byte(spec.Content))
		q.Sum = hex.EncodeToString(sum[:])
	}
	return pathQuery(q, r, root)
}

// observeNative prints the stat line, then for a regular file its content
// in base64, or the same-content mark when it hashes to q.Sum.
func (*FileDriver) observeNative(o *observation, q Query) ([]byte, error) {
	fi, err := os.Lstat(q.Path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := []byte(o.statLine(fi) + "\n")
	if !fi.Mode().IsRegular() {
		return out, nil
	}
	data, err := os.ReadFile(q.Path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.Path, err)
	}
	if q.Sum != "" {
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) == q.Sum {
			return append(out, sameMark...), nil
		}
	}
	return base64.StdEncoding.AppendEncode(out, data), nil
}

// parseFileState reads a file's observation: its stat line, then for a
// regular file its content in base64 or sameMark; nothing when nothing
// is there.
func parseFileState(out []byte) (State, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return State{}, nil
	}
	line, rest, _ := bytes.Cut(out, []byte("\n"))
	fields, err := parseStat(string(line))
	if err != nil {
		return State{}, err
	}
	st := State{Present: true, Fields: fields}
	if fields["type"] != "file" {
		return st, nil
	}
	rest = bytes.TrimSpace(rest)
	if string(rest) == sameMark {
		st.Content = rest
		return st, nil
	}
	st.Content, err = base64.StdEncoding.DecodeString(string(rest))
	if err != nil {
		return State{}, fmt.Errorf("decode file content: %w", err)
	}
	return st, nil
}

// Diff compares content (a unified diff), mode, owner and group.
func (*FileDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: NoChange}
	spec, err := specOf(r, validateFile)
	if err != nil {
		c.Action, c.Diff = Update, err.Error()
		return c
	}
	if spec.State == config.Absent {
		if observed.Present {
			c.Action = Delete
			c.Diff = UnifiedDiff("a"+r.Name, "/dev/null", observed.Content, nil)
		}
		return c
	}
	lines := fileShapeDiffs(spec.Mode, observed)
	if observed.Present {
		lines = append(lines, ownerDiffs(spec.Owner, spec.Group, observed.Fields)...)
	}
	oldName := "a" + r.Name
	if !observed.Present {
		oldName = "/dev/null"
	}
	body := UnifiedDiff(oldName, "b"+r.Name, observed.Content, []byte(spec.Content))
	c.Action = action(observed.Present, lines)
	if body != "" && c.Action == NoChange {
		c.Action = Update
	}
	if c.Action == NoChange {
		return c
	}
	c.Diff = joinDiff(lines, body)
	return c
}

// wantMode is the mode a kept-in-a-file resource must have: the declared
// one, else the observed one, else the default for a new file.
func wantMode(declared string, observed State, def string) string {
	switch {
	case declared != "":
		return normMode(declared)
	case observed.Present && observed.Fields["mode"] != "":
		return observed.Fields["mode"]
	}
	return def
}

// fileShapeDiffs lists what differs in the shape of a regular file that
// exists: its type ("type: directory -> file") and its mode, against the
// declared mode or, when none is declared, the one it keeps.
func fileShapeDiffs(declaredMode string, observed State) []string {
	if !observed.Present {
		return nil
	}
	var lines []string
	if observed.Fields["type"] != "file" {
		lines = append(lines, "type: "+observed.Fields["type"]+" -> file")
	}
	if m := wantMode(declaredMode, observed, defaultFileMode); m != observed.Fields["mode"] {
		lines = append(lines, "mode: "+observed.Fields["mode"]+" -> "+m)
	}
	return lines
}

// joinDiff puts "field: old -> new" lines before a unified diff.
func joinDiff(lines []string, body string) string {
	s := strings.Join(lines, "\n")
	if s != "" {
		s += "\n"
	}
	return s + body
}

// Apply writes the content atomically with its mode, owner and group;
// with state absent it deletes the file. It refuses to replace something
// that is not a regular file (a directory, a symlink), because restore
// could not put it back.
func (d *FileDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	w, remove, err := d.plan(r, observed)
	if err != nil {
		return err
	}
	// A write goes through the transport's WriteFiles (the agent's write
	// op); a removal is a native step.
	if !remove {
		return writeOne(ctx, t, r, w)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

// ApplyNative is Apply on the host: the write in process, or the removal.
func (d *FileDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	w, remove, err := d.plan(r, observed)
	switch {
	case err != nil:
		return err
	case remove:
		return removeFileNative(h, r)
	}
	return h.writeOne(ctx, r, w)
}

// RestoreNative is Restore on the host.
func (*FileDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	return restoreFileNative(ctx, h, r, snapshot)
}

// Write implements Writer: the write of Apply, when it is one.
func (d *FileDriver) Write(r config.Resource, observed State) (FileWrite, bool) {
	w, remove, err := d.plan(r, observed)
	return w, err == nil && !remove
}

// plan returns the write that applies r, or remove when the file is to be
// absent.
func (*FileDriver) plan(r config.Resource, observed State) (w FileWrite, remove bool, err error) {
	spec, err := specOf(r, validateFile)
	if err != nil {
		return FileWrite{}, false, fmt.Errorf("apply: %w", err)
	}
	if spec.State == config.Absent {
		return FileWrite{}, true, nil
	}
	if observed.Present && observed.Fields["type"] != "file" {
		return FileWrite{}, false, fmt.Errorf("apply %s: a %s is there; driftless does not replace it with a file", r.ID(), observed.Fields["type"])
	}
	owner, group := keptOwner(spec.Owner, spec.Group, observed)
	w, err = ownedWrite(r, []byte(spec.Content), wantMode(spec.Mode, observed, createMode(r)), owner, group)
	return w, false, err
}

// keptOwner is the owner and group to give a rewritten file: the declared
// ones, else those it had. Not every transport's WriteFile keeps them (a
// temporary file belongs to whoever wrote it), so they are set explicitly.
func keptOwner(owner, group string, observed State) (string, string) {
	if observed.Present && observed.Fields["type"] == "file" {
		if owner == "" {
			owner = observed.Fields["uid"]
		}
		if group == "" {
			group = observed.Fields["gid"]
		}
	}
	return owner, group
}

// Restore puts back the snapshot's content, mode, owner and group, or
// removes the file when it did not exist before.
func (*FileDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	return restoreFile(ctx, t, r, snapshot)
}

// RestoreWrite returns the write of Restore, unless it removes the file.
func (*FileDriver) RestoreWrite(r config.Resource, snapshot State) (FileWrite, bool) {
	w, remove, err := restorePlan(r, snapshot)
	return w, err == nil && !remove
}

// restoreFile is the restore of every kind kept in a regular file.
func restoreFile(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	w, remove, err := restorePlan(r, snapshot)
	if err != nil {
		return err
	}
	if !remove {
		return writeOne(ctx, t, r, w)
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// restoreFileNative is restoreFile on the host.
func restoreFileNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	w, remove, err := restorePlan(r, snapshot)
	switch {
	case err != nil:
		return err
	case remove:
		return removeFileNative(h, r)
	}
	return h.writeOne(ctx, r, w)
}

// restorePlan returns the write that puts back a file's snapshot, or remove
// when the file did not exist then.
func restorePlan(r config.Resource, snapshot State) (w FileWrite, remove bool, err error) {
	if !snapshot.Present {
		return FileWrite{}, true, nil
	}
	if snapshot.Fields["type"] != "file" {
		return FileWrite{}, false, fmt.Errorf("restore %s: the snapshot is a %s, not a file; nothing of it was changed", r.ID(), snapshot.Fields["type"])
	}
	f := snapshot.Fields
	w, err = ownedWrite(r, snapshot.Content, f["mode"], f["uid"], f["gid"])
	return w, false, err
}

// ownedWrite is the write of data to r.Name with mode, owner and group.
func ownedWrite(r config.Resource, data []byte, mode, owner, group string) (FileWrite, error) {
	m, err := parseMode(mode)
	if err != nil {
		return FileWrite{}, fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return FileWrite{Path: r.Name, Data: data, Mode: m, Owner: owner, Group: group}, nil
}

// writeOne makes one write of r's through the transport's WriteFiles, so
// that the owner is set before the rename, in the same round trip.
func writeOne(ctx context.Context, t Transport, r config.Resource, w FileWrite) error {
	if _, err := t.WriteFiles(ctx, []FileWrite{w}); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// removeFileNative removes a file on the host, as rm -f does: unlink(2),
// which removes a file or a link and refuses a directory.
func removeFileNative(h *Host, r config.Resource) error {
	p, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	if err := syscall.Unlink(p); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove %s: %w", r.ID(), &fs.PathError{Op: "unlink", Path: r.Name, Err: err})
	}
	return nil
}
