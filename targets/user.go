package targets

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
)

// UserDriver manages a local user with getent, useradd, usermod and
// userdel. Declared groups are the user's exact supplementary groups; an
// empty uid, shell or home leaves that attribute alone. A removed user's
// home is kept (data outlives accounts), except when a restore removes a
// user that driftless itself created.
type UserDriver struct{}

var _ Driver = (*UserDriver)(nil)

// Kind returns "user".
func (*UserDriver) Kind() string { return "user" }

// UserSpec manages a local user.
type UserSpec struct {
	UID    int      `yaml:"uid" json:"uid,omitempty"`
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	Shell  string   `yaml:"shell" json:"shell,omitempty"`
	Home   string   `yaml:"home" json:"home,omitempty"`
	System bool     `yaml:"system" json:"system,omitempty"`
	State  string   `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty user spec.
func (*UserDriver) NewSpec() any { return &UserSpec{} }

// Validate is the user kind's one validation.
func (*UserDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateUser)
}

func validateUser(name string, s *UserSpec) []config.Problem {
	var p problems
	if !accountName.MatchString(name) {
		p.add("", "user: %q is not a valid user name (at most 32 characters: a-z, 0-9, _, ., -, starting with a letter or _)", name)
	}
	if s.UID < 0 {
		p.add("uid", "uid: must not be negative")
	}
	for _, g := range s.Groups {
		if !accountName.MatchString(g) {
			p.add("groups", "groups: %q is not a valid group name", g)
		}
	}
	if s.Shell != "" {
		p.path("shell", "shell path", s.Shell)
	}
	if s.Home != "" {
		p.path("home", "home path", s.Home)
	}
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// accountProbe runs a getent-based probe on a real host. On a sandbox root
// the account databases are the sandbox's files, read with grep.
func accountProbe(db, name, root, real string) string {
	if root == "" {
		return real
	}
	p, _ := hostPath(root, "/etc/"+db)
	return "if __e=$(grep -- " + shq("^"+name+":") + " " + shq(p) + " 2>/dev/null); then printf '" + db + "=%s\\n' \"$__e\"; fi"
}

// Probe prints the passwd line, then the user's primary group name and
// every group name it belongs to.
func (*UserDriver) Probe(r config.Resource, root string) string {
	if _, err := specOf(r, validateUser); err != nil {
		return probeError(err)
	}
	n := shq(r.Name)
	return accountProbe("passwd", r.Name, root, "if __e=$(getent passwd "+n+"); then printf 'passwd=%s\\n' \"$__e\"; "+
		"printf 'primary=%s\\n' \"$(id -gn "+n+")\"; printf 'groups=%s\\n' \"$(id -Gn "+n+")\"; fi")
}

// Parse reads the probe's output. Fields: uid, gid, home, shell, primary,
// groups (the supplementary groups, sorted, comma-separated).
func (*UserDriver) Parse(r config.Resource, out []byte) (State, error) {
	st := State{Fields: map[string]string{}}
	var all []string
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "passwd":
			f := strings.Split(v, ":")
			if len(f) != 7 {
				return State{}, fmt.Errorf("parse user probe of %s: passwd line %q", r.Name, v)
			}
			st.Present = true
			st.Fields["uid"], st.Fields["gid"], st.Fields["home"], st.Fields["shell"] = f[2], f[3], f[5], f[6]
		case "primary":
			st.Fields["primary"] = v
		case "groups":
			all = strings.Fields(v)
		}
	}
	var sup []string
	for _, g := range all {
		if g != st.Fields["primary"] {
			sup = append(sup, g)
		}
	}
	if st.Present {
		st.Fields["groups"] = joinSorted(sup)
	}
	return st, nil
}

func joinSorted(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, ",")
}

// userDiffs lists the declared attributes that differ from observed ones.
func userDiffs(s *UserSpec, st State) []string {
	var d []string
	f := st.Fields
	if s.UID != 0 && f["uid"] != strconv.Itoa(s.UID) {
		d = append(d, "uid: "+orNone(f["uid"])+" -> "+strconv.Itoa(s.UID))
	}
	if s.Shell != "" && f["shell"] != s.Shell {
		d = append(d, "shell: "+orNone(f["shell"])+" -> "+s.Shell)
	}
	if s.Home != "" && f["home"] != s.Home {
		d = append(d, "home: "+orNone(f["home"])+" -> "+s.Home)
	}
	if s.Groups != nil && f["groups"] != joinSorted(s.Groups) {
		d = append(d, "groups: "+orNone(f["groups"])+" -> "+orNone(joinSorted(s.Groups)))
	}
	return d
}

// Diff compares the declared user with the live one.
func (d *UserDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, err := specOf(r, validateUser)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	switch {
	case s.State == config.Absent && observed.Present:
		c.Action, c.Diff = Delete, "user: "+r.Name+" -> (removed)"
	case s.State == config.Absent:
	case !observed.Present:
		c.Action = Create
		c.Diff = strings.Join(append([]string{"user: (none) -> " + r.Name}, userDiffs(s, observed)...), "\n")
	default:
		diffs := userDiffs(s, observed)
		c.Action, c.Diff = action(true, diffs), strings.Join(diffs, "\n")
	}
	return c
}

// userArgs are the useradd/usermod options for the declared attributes.
func userArgs(s *UserSpec) string {
	var a []string
	if s.UID != 0 {
		a = append(a, "-u", strconv.Itoa(s.UID))
	}
	if s.Shell != "" {
		a = append(a, "-s", shq(s.Shell))
	}
	if s.Home != "" {
		a = append(a, "-d", shq(s.Home))
	}
	if s.Groups != nil {
		a = append(a, "-G", shq(strings.Join(s.Groups, ",")))
	}
	return strings.Join(a, " ")
}

func accountsOnRealHost(t Transport, id string) error {
	if t.Root() != "" {
		return fmt.Errorf("%s: accounts are managed only on real hosts, not in a sandbox root", id)
	}
	return nil
}

// Apply creates, changes or removes the user.
func (d *UserDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, err := specOf(r, validateUser)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if err := accountsOnRealHost(t, r.ID()); err != nil {
		return err
	}
	n := shq(r.Name)
	var script string
	switch {
	case s.State == config.Absent:
		script = "userdel -- " + n
	case !observed.Present:
		flags := "-m"
		if s.System {
			flags = "-r"
		}
		script = "useradd " + flags + " " + userArgs(s) + " -- " + n
	default:
		args := userArgs(s)
		if args == "" {
			return nil
		}
		script = "usermod " + args + " -- " + n
	}
	return runScript(ctx, t, "apply "+r.ID(), script)
}

// Restore removes a user that did not exist (with the home useradd made),
// re-creates a removed one with its old ids, or puts back the old uid,
// shell, home and supplementary groups.
func (d *UserDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if _, err := specOf(r, validateUser); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	if err := accountsOnRealHost(t, r.ID()); err != nil {
		return err
	}
	n := shq(r.Name)
	f := snapshot.Fields
	var script string
	if !snapshot.Present {
		// userdel -r also removes the home and group useradd made; it may
		// complain about a missing mail spool, so only the outcome counts.
		script = "userdel -r -- " + n + " 2>/dev/null\nif getent passwd " + n + " >/dev/null; then userdel -- " + n + "; fi"
	} else {
		args := "-u " + shq(f["uid"]) + " -s " + shq(f["shell"]) + " -d " + shq(f["home"]) + " -G " + shq(f["groups"])
		script = "if getent passwd " + n + " >/dev/null; then usermod " + args + " -- " + n +
			"; else\n" +
			// userdel removed the user's own group with it: re-create it first.
			"if ! getent group " + shq(f["gid"]) + " >/dev/null; then groupadd -g " + shq(f["gid"]) + " -- " + shq(f["primary"]) + "; fi\n" +
			"useradd -M -g " + shq(f["gid"]) + " " + args + " -- " + n + "; fi"
	}
	return runScript(ctx, t, "restore "+r.ID(), script)
}
