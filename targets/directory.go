package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/driftless/driftless/config"
)

// DirectoryDriver manages directories: existence (mkdir -p), mode, owner
// and group. With state absent it removes only an empty directory: a
// directory's contents are other resources' business or the host's data,
// and deleting them is never a side effect of a declaration.
type DirectoryDriver struct{}

var (
	_ Driver     = (*DirectoryDriver)(nil)
	_ NativeKind = (*DirectoryDriver)(nil)
)

// Kind returns "directory".
func (*DirectoryDriver) Kind() string { return "directory" }

// DirectorySpec manages a directory.
type DirectorySpec struct {
	Mode  string `yaml:"mode" json:"mode,omitempty"`
	Owner string `yaml:"owner" json:"owner,omitempty"`
	Group string `yaml:"group" json:"group,omitempty"`
	State string `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty directory spec.
func (*DirectoryDriver) NewSpec() any { return &DirectorySpec{} }

// Validate is the directory kind's one validation.
func (*DirectoryDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateDirectory)
}

func validateDirectory(name string, s *DirectorySpec) []config.Problem {
	var p problems
	p.path("", "directory path", name)
	p.mode(s.Mode)
	p.owner("owner", s.Owner)
	p.owner("group", s.Group)
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// Parse reads the directory's observation (observeNative): its stat
// line, or nothing when nothing is there.
func (*DirectoryDriver) Parse(_ config.Resource, out []byte) (State, error) {
	line := strings.TrimSpace(string(out))
	if line == "" {
		return State{}, nil
	}
	fields, err := parseStat(line)
	if err != nil {
		return State{}, err
	}
	return State{Present: true, Fields: fields}, nil
}

// query describes a directory for native observation: its path.
func (*DirectoryDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := specOf(r, validateDirectory); err != nil {
		return q, err
	}
	return pathQuery(q, r, root)
}

// observeNative prints the stat line of whatever is at the path,
// nothing when nothing is there.
func (*DirectoryDriver) observeNative(o *observation, q Query) ([]byte, error) {
	return o.stat(q.Path)
}

// Diff compares existence, type, mode, owner and group.
func (*DirectoryDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: NoChange}
	spec, err := specOf(r, validateDirectory)
	if err != nil {
		c.Action, c.Diff = Update, err.Error()
		return c
	}
	if spec.State == config.Absent {
		if observed.Present {
			c.Action, c.Diff = Delete, "directory: present -> absent"
		}
		return c
	}
	if !observed.Present {
		c.Action, c.Diff = Create, "directory: absent -> present"
		if spec.Mode != "" {
			c.Diff += "\nmode: " + normMode(spec.Mode)
		}
		return c
	}
	var lines []string
	if t := observed.Fields["type"]; t != "directory" {
		lines = append(lines, "type: "+t+" -> directory")
	}
	if spec.Mode != "" && normMode(spec.Mode) != observed.Fields["mode"] {
		lines = append(lines, "mode: "+observed.Fields["mode"]+" -> "+normMode(spec.Mode))
	}
	lines = append(lines, ownerDiffs(spec.Owner, spec.Group, observed.Fields)...)
	c.Action, c.Diff = action(true, lines), strings.Join(lines, "\n")
	return c
}

// Apply creates the directory (with its parents) and sets the declared
// mode and owner, or removes it when it is declared absent and empty: on
// the host, through the transport's native apply (ApplyNative).
func (*DirectoryDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	if _, err := specOf(r, validateDirectory); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

func refuseNonDir(r config.Resource, observed State) error {
	return fmt.Errorf("apply %s: a %s is there; driftless does not replace it with a directory", r.ID(), observed.Fields["type"])
}

// Restore puts back the snapshot's mode and owner, or removes the
// directory when it did not exist before (only if it is empty again), on
// the host through the transport's native apply (RestoreNative).
func (*DirectoryDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative is Apply on the host, with os calls: mkdir -p, chmod and
// chown, or the removal of an empty directory.
func (*DirectoryDriver) ApplyNative(_ context.Context, h *Host, r config.Resource, observed State) error {
	spec, err := specOf(r, validateDirectory)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if spec.State == config.Absent {
		return removeDirNative(h, r)
	}
	if observed.Present && observed.Fields["type"] != "directory" {
		return refuseNonDir(r, observed)
	}
	return makeDirNative(h, r, spec.Mode, spec.Owner, spec.Group)
}

// RestoreNative is Restore on the host.
func (*DirectoryDriver) RestoreNative(_ context.Context, h *Host, r config.Resource, snapshot State) error {
	if !snapshot.Present {
		return removeDirNative(h, r)
	}
	if snapshot.Fields["type"] != "directory" {
		return nil // Apply refuses to replace a non-directory, so nothing changed.
	}
	f := snapshot.Fields
	return makeDirNative(h, r, f["mode"], f["uid"], f["gid"])
}

// makeDirNative is makeDir's mkdir -p, chmod and chown. Unlike chmod(1)
// given four digits, it sets or clears a folder's setuid and setgid bits
// as declared.
func makeDirNative(h *Host, r config.Resource, mode, owner, group string) error {
	p, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if err := os.MkdirAll(p, 0o777); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	// The mode and owner are given through a descriptor of the folder
	// itself, opened without following a link: a symbolic link swapped in
	// since the observation is refused, not followed to its target.
	d, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("apply %s: it is no longer a directory (a link or a file was put there since it was observed)", r.ID())
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	defer d.Close()
	if mode != "" {
		m, err := parseMode(mode)
		if err != nil {
			return fmt.Errorf("apply %s: %w", r.ID(), err)
		}
		if err := d.Chmod(m); err != nil {
			return fmt.Errorf("apply %s: %w", r.ID(), err)
		}
	}
	if owner != "" || group != "" {
		uid, gid, err := resolveOwner(owner, group)
		if err != nil {
			return fmt.Errorf("apply %s: chown: %w", r.ID(), err)
		}
		if err := d.Chown(uid, gid); err != nil {
			return fmt.Errorf("apply %s: chown to %s: %w", r.ID(), chownArg(owner, group), err)
		}
	}
	return nil
}

// removeDirNative is removeDir: an empty directory is removed, nothing
// there is nothing to do, anything else is refused with the reason.
func removeDirNative(h *Host, r config.Resource) error {
	p, err := hostPath(h.Root(), r.Name)
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && fi.Mode()&fs.ModeSymlink != 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("remove %s: it is not a directory", r.ID())
	}
	// rmdir refuses a folder that is not empty (ENOTEMPTY, or EEXIST):
	// nothing in it is ever removed with it.
	if err := syscall.Rmdir(p); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("remove %s: it is not empty: driftless removes only empty directories, so that no data goes with it", r.ID())
		}
		return fmt.Errorf("remove %s: %w", r.ID(), err)
	}
	return nil
}
