package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	"github.com/driftless/driftless/config"
)

// SymlinkDriver manages a symbolic link at the resource's name pointing to
// its target. A link is switched atomically: the new link is made beside
// the old one and renamed over it, so the path never stops resolving. The
// target is written as declared, not placed under the transport's root,
// because it is read on the host.
type SymlinkDriver struct{}

var _ Driver = (*SymlinkDriver)(nil)

// Kind returns "symlink".
func (*SymlinkDriver) Kind() string { return "symlink" }

// SymlinkSpec manages a symbolic link at the name pointing to Target.
type SymlinkSpec struct {
	Target string `yaml:"target" json:"target"`
	State  string `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty symlink spec.
func (*SymlinkDriver) NewSpec() any { return &SymlinkSpec{} }

// Validate is the symlink kind's one validation.
func (*SymlinkDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateSymlink)
}

func validateSymlink(name string, s *SymlinkSpec) []config.Problem {
	var p problems
	p.path("", "symlink path", name)
	p.oneOf("state", s.State, config.Present, config.Absent)
	if s.State != config.Absent {
		p.required("symlink", "target", s.Target)
	}
	if strings.IndexFunc(s.Target, unicode.IsControl) >= 0 {
		p.add("target", "target: %q holds a control character (a newline, a tab)", s.Target)
	}
	return p
}

// Parse reads the link's observation (observeNative): "symlink" and the
// link's target, "other" when something that is not a link is there, and
// nothing when the path is free.
func (*SymlinkDriver) Parse(_ config.Resource, out []byte) (State, error) {
	kind, rest, _ := bytes.Cut(out, []byte("\n"))
	switch string(kind) {
	case "":
		return State{}, nil
	case "other":
		return State{Present: true, Fields: map[string]string{"type": "other"}}, nil
	case "symlink":
		target := string(bytes.TrimSuffix(rest, []byte("\n")))
		return State{Present: true, Fields: map[string]string{"type": "symlink", "target": target}}, nil
	}
	return State{}, fmt.Errorf("unexpected symlink observation %q", out)
}

// query describes a link for native observation: its path.
func (*SymlinkDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := specOf(r, validateSymlink); err != nil {
		return q, err
	}
	return pathQuery(q, r, root)
}

// observeNative prints "symlink" and the target, "other" for anything
// else at the path, nothing when nothing is there.
func (*SymlinkDriver) observeNative(_ *observation, q Query) ([]byte, error) {
	fi, err := os.Lstat(q.Path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return []byte("other\n"), nil
	}
	target, err := os.Readlink(q.Path)
	if err != nil {
		return nil, err
	}
	return []byte("symlink\n" + target + "\n"), nil
}

// Diff compares existence and target. Something other than a link at the
// path is reported, and Apply refuses to replace it.
func (*SymlinkDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: NoChange}
	spec, err := specOf(r, validateSymlink)
	if err != nil {
		c.Action, c.Diff = Update, err.Error()
		return c
	}
	isLink := observed.Present && observed.Fields["type"] == "symlink"
	switch {
	case spec.State == config.Absent:
		if isLink {
			c.Action, c.Diff = Delete, "target: "+observed.Fields["target"]+" -> (absent)"
		}
	case !observed.Present:
		c.Action, c.Diff = Create, "target: (absent) -> "+spec.Target
	case !isLink:
		c.Action, c.Diff = Update, "type: not a symlink -> symlink to "+spec.Target
	case observed.Fields["target"] != spec.Target:
		c.Action, c.Diff = Update, "target: "+observed.Fields["target"]+" -> "+spec.Target
	}
	return c
}

// Apply points the link at the target, or removes the link when it is
// declared absent, natively (ApplyNative). It refuses to replace
// something that is not a link.
func (*SymlinkDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	if _, err := specOf(r, validateSymlink); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

func refuseNonLink(r config.Resource) error {
	return fmt.Errorf("apply %s: something that is not a symlink is there; driftless does not replace it", r.ID())
}

// Restore points the link back at the snapshot's target, or removes it
// when there was no link before, natively (RestoreNative).
func (*SymlinkDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative is Apply on the host, with os calls.
func (*SymlinkDriver) ApplyNative(_ context.Context, h *Host, r config.Resource, observed State) error {
	spec, err := specOf(r, validateSymlink)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if spec.State == config.Absent {
		return removeLinkNative(h, r)
	}
	if observed.Present && observed.Fields["type"] != "symlink" {
		return refuseNonLink(r)
	}
	return switchLinkNative(h, r, spec.Target)
}

// RestoreNative is Restore on the host.
func (*SymlinkDriver) RestoreNative(_ context.Context, h *Host, r config.Resource, snapshot State) error {
	switch {
	case !snapshot.Present:
		return removeLinkNative(h, r)
	case snapshot.Fields["type"] != "symlink":
		return nil // Apply refuses to replace a non-link, so nothing changed.
	}
	return switchLinkNative(h, r, snapshot.Fields["target"])
}

// switchLinkNative makes a link to target under a temporary name beside
// the path, then renames it over the path (one rename(2), which refuses a
// directory).
func switchLinkNative(h *Host, r config.Resource, target string) error {
	if target == "" {
		return fmt.Errorf("apply %s: no target", r.ID())
	}
	p, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	dropStaleLinks(p)
	tmp := filepath.Join(filepath.Dir(p), "."+tempBase(filepath.Base(p))+".driftless-"+randomHex(6))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// removeLinkNative removes the path when it is a link and leaves anything
// else.
func removeLinkNative(h *Host, r config.Resource) error {
	p, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	dropStaleLinks(p)
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	return nil
}

// dropStaleLinks removes the temporary links of p that a process killed
// between making one and renaming it left beside it (only links, and only
// with the temporary name's pattern), so that a recovery leaves none.
func dropStaleLinks(p string) {
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "."+tempBase(filepath.Base(p))+".driftless-*"))
	for _, l := range left {
		if fi, err := os.Lstat(l); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			_ = os.Remove(l)
		}
	}
}
