package targets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
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
	UID int `yaml:"uid" json:"uid,omitempty"`
	// Groups is kept in JSON when empty: an empty list (no supplementary
	// groups) is not the same as none declared (nil, left as they are).
	Groups []string `yaml:"groups" json:"groups"`
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

// Parse reads the user query's answer (what observeNative prints). Fields: uid, gid, home, shell, primary,
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

// query describes a user for native observation: its name.
func (*UserDriver) query(r config.Resource, root string) (Query, error) {
	_, err := specOf(r, validateUser)
	return accountQuery(r, root, err)
}

// observeNative prints the user query's answer: getent's passwd line,
// then what `id -gn` and `id -Gn` print.
func (*UserDriver) observeNative(o *observation, q Query) ([]byte, error) {
	return o.account(q)
}

// accountQuery describes a user or group: its name, and under a sandbox
// root the root's own account file, the one read there.
func accountQuery(r config.Resource, root string, invalid error) (Query, error) {
	q := Query{Kind: r.Kind, Name: r.Name}
	if invalid != nil {
		return q, invalid
	}
	if root != "" {
		p, err := hostPath(root, "/etc/"+accountDB(r.Kind))
		if err != nil {
			return q, err
		}
		q.Path, q.Sandbox = p, true
	}
	return q, nil
}

// accountDB is the account database of a kind: passwd for users, group
// for groups.
func accountDB(kind string) string {
	if kind == "group" {
		return "group"
	}
	return "passwd"
}

// sandboxAccount answers a user or group under a sandbox root from the
// root's own file: its lines for the name, "passwd=" or "group=" first,
// nothing when there are none or the file cannot be read. The groups a
// user belongs to are not asked there.
func sandboxAccount(q Query) []byte {
	data, err := os.ReadFile(q.Path)
	if err != nil {
		return nil
	}
	var lines []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, q.Name+":") {
			lines = append(lines, line)
		}
	}
	if lines == nil {
		return nil
	}
	return []byte(accountDB(q.Kind) + "=" + strings.Join(lines, "\n") + "\n")
}

// accounts is what the user and group queries read, from the account
// databases the way getent and id read them with "files" sources: the
// first entry of a name or an id wins, comments and blank lines are
// skipped. It is read once per batch.
type accounts struct {
	passwd [][]string // name:passwd:uid:gid:gecos:dir:shell
	group  [][]string // name:passwd:gid:members
}

// nsswitch is the host's name-service configuration file.
const nsswitch = "/etc/nsswitch.conf"

// filesOnly reports whether the host's name service reads users and groups
// only from the files (and from systemd, which adds only root, nobody and
// services' dynamic users, none of which driftless manages): then the
// files are what getent and id answer.
func filesOnly(conf string) bool {
	data, err := os.ReadFile(conf)
	if err != nil {
		return os.IsNotExist(err) // glibc's default without the file: files
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		db, srcs, ok := strings.Cut(line, ":")
		if !ok || (strings.TrimSpace(db) != "passwd" && strings.TrimSpace(db) != "group") {
			continue
		}
		for _, s := range strings.Fields(srcs) {
			if s != "files" && s != "systemd" && !strings.HasPrefix(s, "[") {
				return false
			}
		}
	}
	return true
}

// readDB reads an account database: its entries split on ":", each with
// at least n fields.
func readDB(path string, n int) ([][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out [][]string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= n {
			out = append(out, f)
		}
	}
	return out, nil
}

// loadAccounts reads the passwd and group databases under etc.
func loadAccounts(etc string) (*accounts, error) {
	p, err := readDB(etc+"/passwd", 7)
	if err != nil {
		return nil, err
	}
	g, err := readDB(etc+"/group", 4)
	if err != nil {
		return nil, err
	}
	return &accounts{passwd: p, group: g}, nil
}

func findEntry(db [][]string, field int, v string) []string {
	for _, e := range db {
		if e[field] == v {
			return e
		}
	}
	return nil
}

// groupName is id's name for a group id: the first group with it, else
// the number.
func (a *accounts) groupName(gid string) string {
	if g := findEntry(a.group, 2, gid); g != nil {
		return g[0]
	}
	return gid
}

// userLines prints the user query's answer: getent's passwd line, then
// `id -gn` (the primary group's name) and `id -Gn` (the primary group,
// then every group listing the user as a member, each id once).
func (a *accounts) userLines(name string) []byte {
	p := findEntry(a.passwd, 0, name)
	if p == nil {
		return nil
	}
	gids := []string{p[3]}
	for _, g := range a.group {
		if slices.Contains(strings.Split(g[3], ","), name) && !slices.Contains(gids, g[2]) {
			gids = append(gids, g[2])
		}
	}
	names := make([]string, len(gids))
	for i, gid := range gids {
		names[i] = a.groupName(gid)
	}
	return fmt.Appendf(nil, "passwd=%s\nprimary=%s\ngroups=%s\n", strings.Join(p[:7], ":"), names[0], strings.Join(names, " "))
}

// groupLine prints the group query's answer: getent's group line.
func (a *accounts) groupLine(name string) []byte {
	g := findEntry(a.group, 0, name)
	if g == nil {
		return nil
	}
	return fmt.Appendf(nil, "group=%s\n", strings.Join(g[:4], ":"))
}

// account answers a user or group query. A host whose name service reads
// other sources (LDAP, NIS...) is asked with getent and id, which read
// them: only there does an account cost processes.
func (o *observation) account(q Query) ([]byte, error) {
	if q.Sandbox {
		return sandboxAccount(q), nil
	}
	if !o.accountsRead {
		o.accountsRead, o.nss = true, !filesOnly(nsswitch)
		if !o.nss {
			o.accounts, o.accountsErr = loadAccounts("/etc")
		}
	}
	switch {
	case o.nss:
		return nssAccount(o.ctx, q)
	case o.accountsErr != nil:
		return nil, o.accountsErr
	case q.Kind == "user":
		return o.accounts.userLines(q.Name), nil
	}
	return o.accounts.groupLine(q.Name), nil
}

// nssAccount answers with getent and id themselves, whose output is the
// answer's format.
func nssAccount(ctx context.Context, q Query) ([]byte, error) {
	db := accountDB(q.Kind)
	e, err := exec.CommandContext(ctx, "getent", db, q.Name).Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); ok {
			return nil, nil // not found
		}
		return nil, fmt.Errorf("getent %s %s: %w", db, q.Name, err)
	}
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(e))
	if sc.Scan() {
		fmt.Fprintf(&b, "%s=%s\n", db, sc.Text())
	}
	if q.Kind == "user" {
		primary, _ := exec.CommandContext(ctx, "id", "-gn", q.Name).Output()
		all, _ := exec.CommandContext(ctx, "id", "-Gn", q.Name).Output()
		fmt.Fprintf(&b, "primary=%s\ngroups=%s\n", bytes.TrimRight(primary, "\n"), bytes.TrimRight(all, "\n"))
	}
	return b.Bytes(), nil
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

// Apply creates, changes or removes the user natively (ApplyNative).
func (d *UserDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	if _, err := specOf(r, validateUser); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

// Restore removes a user that did not exist (with the home useradd made),
// re-creates a removed one with its old ids, or puts back the old uid,
// shell, home and supplementary groups, natively (RestoreNative).
func (d *UserDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if _, err := specOf(r, validateUser); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// userArgv are the useradd/usermod options for the declared attributes.
func userArgv(s *UserSpec) []string {
	var a []string
	if s.UID != 0 {
		a = append(a, "-u", strconv.Itoa(s.UID))
	}
	if s.Shell != "" {
		a = append(a, "-s", s.Shell)
	}
	if s.Home != "" {
		a = append(a, "-d", s.Home)
	}
	if s.Groups != nil {
		a = append(a, "-G", strings.Join(s.Groups, ","))
	}
	return a
}

// ApplyNative is Apply on the host: useradd, usermod or userdel run
// without a shell. The system's own tools keep /etc/passwd, /etc/shadow,
// /etc/group and /etc/gshadow consistent, under their lock, with the
// host's defaults (login.defs, skeleton, subordinate ids): driftless does
// not write those files itself.
func (*UserDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	s, err := specOf(r, validateUser)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if err := accountsOnHost(h, r.ID()); err != nil {
		return err
	}
	what := "apply " + r.ID()
	switch {
	case s.State == config.Absent:
		return h.exec(ctx, what, "userdel", "--", r.Name)
	case !observed.Present:
		flag := "-m"
		if s.System {
			flag = "-r"
		}
		return h.exec(ctx, what, "useradd", append(append([]string{flag}, userArgv(s)...), "--", r.Name)...)
	}
	args := userArgv(s)
	if len(args) == 0 {
		return nil
	}
	return h.exec(ctx, what, "usermod", append(args, "--", r.Name)...)
}

// RestoreNative is Restore on the host, with the same tools.
func (*UserDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	if err := accountsOnHost(h, r.ID()); err != nil {
		return err
	}
	what := "restore " + r.ID()
	if !snapshot.Present {
		// userdel -r also removes the home and group useradd made; it may
		// complain about a missing mail spool, so only the outcome counts.
		_ = h.exec(ctx, what, "userdel", "-r", "--", r.Name)
		if _, err := user.Lookup(r.Name); err != nil {
			return nil
		}
		return h.exec(ctx, what, "userdel", "--", r.Name)
	}
	f := snapshot.Fields
	args := []string{"-u", f["uid"], "-s", f["shell"], "-d", f["home"], "-G", f["groups"]}
	if _, err := user.Lookup(r.Name); err == nil {
		return h.exec(ctx, what, "usermod", append(args, "--", r.Name)...)
	}
	// userdel removed the user's own group with it: re-create it first.
	if _, err := user.LookupGroupId(f["gid"]); err != nil {
		if err := h.exec(ctx, what, "groupadd", "-g", f["gid"], "--", f["primary"]); err != nil {
			return err
		}
	}
	return h.exec(ctx, what, "useradd", append(append([]string{"-M", "-g", f["gid"]}, args...), "--", r.Name)...)
}

// accountsOnHost refuses accounts under a sandbox root: the account
// tools would change the daemon's own machine.
func accountsOnHost(h *Host, id string) error {
	if h.Root() != "" {
		return fmt.Errorf("%s: accounts are managed only on real hosts, not in a sandbox root", id)
	}
	return nil
}
