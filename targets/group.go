package targets

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
)

// GroupDriver manages a local group with getent, groupadd, groupmod and
// groupdel. Membership belongs to users (UserSpec.Groups); a group only
// remembers its members so that a restore can put them back.
type GroupDriver struct{}

var _ Driver = (*GroupDriver)(nil)

// Kind returns "group".
func (*GroupDriver) Kind() string { return "group" }

// GroupSpec manages a local group.
type GroupSpec struct {
	GID    int    `yaml:"gid" json:"gid,omitempty"`
	System bool   `yaml:"system" json:"system,omitempty"`
	State  string `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty group spec.
func (*GroupDriver) NewSpec() any { return &GroupSpec{} }

// Validate is the group kind's one validation.
func (*GroupDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateGroup)
}

func validateGroup(name string, s *GroupSpec) []config.Problem {
	var p problems
	if !accountName.MatchString(name) {
		p.add("", "group: %q is not a valid group name (at most 32 characters: a-z, 0-9, _, ., -, starting with a letter or _)", name)
	}
	if s.GID < 0 {
		p.add("gid", "gid: must not be negative")
	}
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// Parse reads the group query's answer. Fields: gid, members (sorted, comma-separated).
func (*GroupDriver) Parse(r config.Resource, out []byte) (State, error) {
	v, ok := strings.CutPrefix(strings.TrimRight(string(out), "\n"), "group=")
	if !ok {
		if strings.TrimSpace(string(out)) == "" {
			return State{}, nil
		}
		return State{}, fmt.Errorf("parse group probe of %s: unexpected output %q", r.Name, trimOutput(out))
	}
	f := strings.Split(v, ":")
	if len(f) != 4 {
		return State{}, fmt.Errorf("parse group probe of %s: group line %q", r.Name, v)
	}
	var members []string
	if f[3] != "" {
		members = strings.Split(f[3], ",")
	}
	return State{Present: true, Fields: map[string]string{"gid": f[2], "members": joinSorted(members)}}, nil
}

// query describes a group for native observation: its name.
func (*GroupDriver) query(r config.Resource, root string) (Query, error) {
	_, err := specOf(r, validateGroup)
	return accountQuery(r, root, err)
}

// observeNative prints the group query's answer: getent's group line.
func (*GroupDriver) observeNative(o *observation, q Query) ([]byte, error) {
	return o.account(q)
}

// Diff compares the declared group with the live one.
func (d *GroupDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, err := specOf(r, validateGroup)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	switch {
	case s.State == config.Absent && observed.Present:
		c.Action, c.Diff = Delete, "group: "+r.Name+" -> (removed)"
	case s.State == config.Absent:
	case !observed.Present:
		c.Action, c.Diff = Create, "group: (none) -> "+r.Name
		if s.GID != 0 {
			c.Diff += "\ngid: (none) -> " + strconv.Itoa(s.GID)
		}
	case s.GID != 0 && observed.Fields["gid"] != strconv.Itoa(s.GID):
		c.Action, c.Diff = Update, "gid: "+observed.Fields["gid"]+" -> "+strconv.Itoa(s.GID)
	}
	return c
}

// Apply creates, renumbers or removes the group natively (ApplyNative).
func (d *GroupDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	if _, err := specOf(r, validateGroup); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

// Restore removes a group that did not exist, or re-creates or renumbers
// it with its old gid and members, natively (RestoreNative).
func (d *GroupDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if _, err := specOf(r, validateGroup); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative is Apply on the host: groupadd, groupmod or groupdel run
// without a shell (see UserDriver.ApplyNative).
func (*GroupDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	s, err := specOf(r, validateGroup)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if err := accountsOnHost(h, r.ID()); err != nil {
		return err
	}
	what := "apply " + r.ID()
	var gid []string
	if s.GID != 0 {
		gid = []string{"-g", strconv.Itoa(s.GID)}
	}
	switch {
	case s.State == config.Absent:
		return h.exec(ctx, what, "groupdel", "--", r.Name)
	case !observed.Present:
		if s.System {
			gid = append(gid, "-r")
		}
		return h.exec(ctx, what, "groupadd", append(gid, "--", r.Name)...)
	case gid != nil:
		return h.exec(ctx, what, "groupmod", append(gid, "--", r.Name)...)
	}
	return nil
}

// RestoreNative is Restore on the host, with the same tools and gpasswd
// for the members.
func (*GroupDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	if err := accountsOnHost(h, r.ID()); err != nil {
		return err
	}
	what := "restore " + r.ID()
	_, lookErr := user.LookupGroup(r.Name)
	if !snapshot.Present {
		if lookErr != nil {
			return nil
		}
		return h.exec(ctx, what, "groupdel", "--", r.Name)
	}
	gid := snapshot.Fields["gid"]
	tool := "groupadd"
	if lookErr == nil {
		tool = "groupmod"
	}
	if err := h.exec(ctx, what, tool, "-g", gid, "--", r.Name); err != nil {
		return err
	}
	return h.exec(ctx, what, "gpasswd", "-M", snapshot.Fields["members"], r.Name)
}
