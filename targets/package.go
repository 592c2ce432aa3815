package targets

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/driftless/driftless/config"
)

// PackageDriver manages an apt (dpkg) or dnf (rpm) package, whichever the
// host has. It installs the declared version (or any, when none is
// pinned), upgrades and downgrades to a pin, removes, and restores the
// version a snapshot saw. It never prompts: apt runs noninteractive and
// keeps changed configuration files. Package lists are refreshed only
// when the wanted version is not known yet.
type PackageDriver struct{}

var _ Driver = (*PackageDriver)(nil)

// Package managers the driver speaks.
const (
	ManagerApt = "apt"
	ManagerDnf = "dnf"
)

// packageName and packageVersion are what dpkg and rpm allow, which also
// keeps shell syntax out of the scripts.
var (
	packageName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*(:[a-z0-9]+)?$`)
	packageVersion = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]*$`)
)

// Kind returns "package".
func (*PackageDriver) Kind() string { return "package" }

// PackageSpec manages an apt or dnf package named by the resource name.
type PackageSpec struct {
	State   string `yaml:"state" json:"state,omitempty"`
	Version string `yaml:"version" json:"version,omitempty"`
}

// NewSpec returns an empty package spec.
func (*PackageDriver) NewSpec() any { return &PackageSpec{} }

// Validate is the package kind's one validation.
func (*PackageDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validatePackage)
}

func validatePackage(name string, s *PackageSpec) []config.Problem {
	var p problems
	if !packageName.MatchString(name) {
		p.add("", "package: %q is not a valid package name", name)
	}
	if !packageVersion.MatchString(s.Version) {
		p.add("version", "version: %q has characters no package version has", s.Version)
	}
	p.oneOf("state", s.State, config.Present, config.Absent, "latest")
	return p
}

func checkPackage(name, version string) error {
	if !packageName.MatchString(name) {
		return fmt.Errorf("package %q: not a valid package name", name)
	}
	if !packageVersion.MatchString(version) {
		return fmt.Errorf("package %s: version %q has characters no package version has", name, version)
	}
	return nil
}

// Parse reads the package query's answer. Fields: manager, status (dpkg's
// two-letter status, "" when dpkg never heard of the package), version
// (the installed one, empty when not installed).
func (*PackageDriver) Parse(r config.Resource, out []byte) (State, error) {
	var manager string
	var pairs [][2]string // (status, version), one per installed architecture
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "manager":
			manager = v
		case "status":
			pairs = append(pairs, [2]string{strings.TrimSpace(v), ""})
		case "version":
			if len(pairs) == 0 {
				return State{}, fmt.Errorf("parse package probe of %s: version without status in %q", r.Name, trimOutput(out))
			}
			pairs[len(pairs)-1][1] = strings.TrimPrefix(v, "(none):") // rpm without an epoch
		}
	}
	if manager == "" {
		return State{}, fmt.Errorf("parse package probe of %s: no package manager in %q", r.Name, trimOutput(out))
	}
	st := State{Fields: map[string]string{"manager": manager, "status": "", "version": ""}}
	for i, p := range pairs {
		if i == 0 || isInstalledStatus(p[0]) {
			st.Fields["status"] = p[0]
		}
		if isInstalledStatus(p[0]) {
			st.Present, st.Fields["version"] = true, p[1]
			break
		}
	}
	return st, nil
}

// query describes a package for native observation: its name, plain or
// qualified with an architecture ("libc6:amd64"). Packages are refused
// under a sandbox root: the package database is the daemon's machine's.
func (*PackageDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := specOf(r, validatePackage); err != nil {
		return q, err
	}
	if root != "" {
		return q, errPackageSandbox(r.Name)
	}
	q.Name = r.Name
	return q, nil
}

// observeNative answers a package from the batch's one package-database
// query.
func (*PackageDriver) observeNative(o *observation, q Query) ([]byte, error) {
	if o.packagesErr != nil {
		return nil, o.packagesErr
	}
	if b, ok := o.packages[q.Name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("package %s: not in the package query's answer", q.Name)
}

// queryPackages asks the host's package database about every package of
// the batch in one process (dpkg-query, else rpm) and returns each one's
// answer in the package query's format.
func queryPackages(ctx context.Context, qs []Query) (map[string][]byte, error) {
	var names []string
	for _, q := range qs {
		if q.Kind == "package" {
			names = append(names, q.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(names))
	if _, err := exec.LookPath("dpkg-query"); err == nil {
		dpkgQuery(ctx, names, out)
	} else if _, err := exec.LookPath("rpm"); err == nil {
		rpmQuery(ctx, names, out)
	} else {
		return nil, errors.New("neither dpkg nor rpm is installed on this host")
	}
	return out, nil
}

// dpkgQuery answers names with one dpkg-query: per package, "manager=apt"
// and a status and version line for each of its architectures dpkg
// knows, in dpkg's order; a name qualified with an architecture
// ("libc6:i386") gets that architecture's line only, as dpkg-query
// given that name alone prints. dpkg's own qualifiers "any" and
// "native" name no architecture: such a name is asked on its own.
func dpkgQuery(ctx context.Context, names []string, out map[string][]byte) {
	var batch []string
	for _, n := range names {
		out[n] = []byte("manager=apt\n")
		if _, q, _ := strings.Cut(n, ":"); q != "any" && q != "native" {
			batch = append(batch, n)
			continue
		}
		for _, f := range dpkgLines(ctx, n) {
			out[n] = fmt.Appendf(out[n], "status=%s\nversion=%s\n", f[2], f[3])
		}
	}
	for _, f := range dpkgLines(ctx, batch...) {
		// dpkg prints a package once, however many names match it.
		for _, n := range []string{f[0], f[0] + ":" + f[1]} {
			if b, ok := out[n]; ok {
				out[n] = fmt.Appendf(b, "status=%s\nversion=%s\n", f[2], f[3])
			}
		}
	}
}

// dpkgLines runs one dpkg-query over names: each package's name,
// architecture, status and version.
func dpkgLines(ctx context.Context, names ...string) [][]string {
	if len(names) == 0 {
		return nil
	}
	args := append([]string{"-W", "-f=${Package}\t${Architecture}\t${db:Status-Abbrev}\t${Version}\n", "--"}, names...)
	// A name dpkg never heard of makes it exit 1 after printing the others.
	stdout, _ := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	var lines [][]string
	for line := range strings.SplitSeq(string(stdout), "\n") {
		if f := strings.SplitN(line, "\t", 4); len(f) == 4 {
			lines = append(lines, f)
		}
	}
	return lines
}

// rpmQuery answers names with one rpm query. rpm also matches a name with
// its version ("pkg-1.0"): a name its answer does not mention by name is
// asked again on its own.
func rpmQuery(ctx context.Context, names []string, out map[string][]byte) {
	const qf = "=%{NAME}\tstatus=ii\\nversion=%{EPOCH}:%{VERSION}-%{RELEASE}\\n"
	args := append([]string{"-q", "--qf", qf, "--"}, names...)
	stdout, _ := exec.CommandContext(ctx, "rpm", args...).Output()
	answered := map[string]bool{}
	for _, n := range names {
		out[n] = []byte("manager=dnf\n")
	}
	lines := strings.Split(string(stdout), "\n")
	for i, line := range lines {
		if n, ok := strings.CutPrefix(line, "package "); ok {
			answered[strings.TrimSuffix(n, " is not installed")] = true
			continue
		}
		n, status, ok := strings.Cut(strings.TrimPrefix(line, "="), "\t")
		if !ok || !strings.HasPrefix(line, "=") || i+1 >= len(lines) {
			continue
		}
		if b, known := out[n]; known {
			answered[n] = true
			out[n] = append(b, status+"\n"+lines[i+1]+"\n"...)
		}
	}
	for _, n := range names {
		if answered[n] {
			continue
		}
		one, _ := exec.CommandContext(ctx, "rpm", "-q", "--qf", "status=ii\\nversion=%{EPOCH}:%{VERSION}-%{RELEASE}\\n", "--", n).Output()
		b := []byte("manager=dnf\n")
		for line := range strings.SplitSeq(string(one), "\n") {
			if line != "" && !strings.Contains(line, "is not installed") {
				b = append(b, line+"\n"...)
			}
		}
		out[n] = b
	}
}

// isInstalledStatus reads dpkg's abbreviated status: its second letter is
// the current state (installed, or installed with triggers pending).
func isInstalledStatus(s string) bool {
	return len(s) >= 2 && strings.ContainsRune("iWt", rune(s[1]))
}

// versionMatches says whether an installed version satisfies a pin. An rpm
// pin may leave out the release ("2.0" matches "2.0-1.fc40").
func versionMatches(manager, installed, pin string) bool {
	if pin == "" || installed == pin {
		return true
	}
	return manager == ManagerDnf && (strings.HasPrefix(installed, pin+"-") || strings.HasPrefix(installed, "0:"+pin))
}

// Diff compares the declared package with the installed one.
func (d *PackageDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, err := specOf(r, validatePackage)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	want := s.Version
	if want == "" {
		want = "(any)"
	}
	have := observed.Fields["version"]
	switch {
	case s.State == config.Absent && observed.Present:
		c.Action, c.Diff = Delete, "version: "+have+" -> (removed)"
	case s.State == config.Absent:
	case !observed.Present:
		c.Action, c.Diff = Create, "version: (none) -> "+want
	case !versionMatches(observed.Fields["manager"], have, s.Version):
		c.Action, c.Diff = Update, "version: "+have+" -> "+want
	}
	return c
}

// Apply installs, upgrades, downgrades or removes the package natively
// (ApplyNative).
func (d *PackageDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	if _, err := specOf(r, validatePackage); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

// Restore installs the version the snapshot saw, or removes the package
// when it was not installed (purging it when dpkg had never seen it),
// natively (RestoreNative).
func (d *PackageDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if err := checkPackage(r.Name, snapshot.Fields["version"]); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// errPackageSandbox refuses packages under a sandbox root: the package
// manager would change the daemon's own machine.
func errPackageSandbox(name string) error {
	return fmt.Errorf("package %s: packages are managed only on real hosts, not in a sandbox root", name)
}

// ApplyNative is Apply on the host: one run of the package manager,
// without a shell, in the common case (see installNative).
func (*PackageDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	s, err := specOf(r, validatePackage)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if h.Root() != "" {
		return fmt.Errorf("apply %s: %w", r.ID(), errPackageSandbox(r.Name))
	}
	m, what := observed.Fields["manager"], "apply "+r.ID()
	if s.State == config.Absent {
		return removeNative(ctx, h, what, m, r.Name, false)
	}
	return installNative(ctx, h, what, m, r.Name, s.Version)
}

// RestoreNative is Restore on the host.
func (*PackageDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	v := snapshot.Fields["version"]
	if err := checkPackage(r.Name, v); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	if h.Root() != "" {
		return fmt.Errorf("restore %s: %w", r.ID(), errPackageSandbox(r.Name))
	}
	m, what := snapshot.Fields["manager"], "restore "+r.ID()
	if snapshot.Present {
		return installNative(ctx, h, what, m, r.Name, v)
	}
	// Nothing to remove is success, not an error.
	query := []string{"dpkg-query", "-W", "--", r.Name}
	if m == ManagerDnf {
		query = []string{"rpm", "-q", "--", r.Name}
	}
	if h.exec(ctx, what, query[0], query[1:]...) != nil {
		return nil
	}
	return removeNative(ctx, h, what, m, r.Name, snapshot.Fields["status"] == "")
}

// aptArgs make apt-get noninteractive (with DEBIAN_FRONTEND), keep
// changed configuration files, and wait for a dpkg lock held by someone
// else instead of failing at once.
var aptArgs = []string{"-y", "-q", "-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}

// installNative installs name at version ("" for any version) with one
// run of apt-get or dnf. Only when that run fails is the package
// metadata refreshed and the install tried once more (and, with dnf, a
// downgrade tried first), rather than asking the cache first: one more
// process in every apply.
func installNative(ctx context.Context, h *Host, what, manager, name, version string) error {
	if manager == ManagerDnf {
		target := name
		if version != "" {
			target = name + "-" + version
		}
		if h.exec(ctx, what, "dnf", "-y", "-q", "install", target) == nil {
			return nil
		}
		if h.exec(ctx, what, "dnf", "-y", "-q", "downgrade", target) == nil {
			return nil
		}
		return h.exec(ctx, what, "dnf", "-y", "-q", "--refresh", "install", target)
	}
	target := name
	if version != "" {
		target = name + "=" + version
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	install := append(append([]string{}, aptArgs...), "--allow-downgrades", "install", "--", target)
	if h.execEnv(ctx, what, env, "apt-get", install...) == nil {
		return nil
	}
	// A fresh host, or a version published since the lists were read.
	if err := h.execEnv(ctx, what, env, "apt-get", "-q", "update"); err != nil {
		return err
	}
	return h.execEnv(ctx, what, env, "apt-get", install...)
}

// removeNative removes name (purge also drops its configuration files).
func removeNative(ctx context.Context, h *Host, what, manager, name string, purge bool) error {
	if manager == ManagerDnf {
		return h.exec(ctx, what, "dnf", "-y", "-q", "remove", "--", name)
	}
	verb := "remove"
	if purge {
		verb = "purge"
	}
	return h.execEnv(ctx, what, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", append(append([]string{}, aptArgs...), verb, "--", name)...)
}
