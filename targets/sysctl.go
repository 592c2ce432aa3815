package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/driftless/driftless/config"
)

// SysctlDriver sets a kernel parameter through /proc/sys. It reads the live
// value from /proc/sys and writes it with `sysctl -w` (or straight into
// /proc/sys where procps is not installed). Values that hold several
// numbers compare equal whatever the whitespace between them.
//
// The value is also written to /etc/sysctl.d/99-driftless-NAME.conf, so
// that it survives a reboot; a change to that file is drift too.
//
// On a sandbox root the parameter is a plain file under ROOT/proc/sys, so a
// demo never changes the kernel of the machine it runs on.
type SysctlDriver struct{}

var (
	_ Driver     = (*SysctlDriver)(nil)
	_ NativeKind = (*SysctlDriver)(nil)
)

// sysctlName is a parameter name: dotted (net.ipv4.ip_forward) or slashed
// (net/ipv4/conf/eth0.10/forwarding, for names with dots in them).
var sysctlName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-/:@]*$`)

// Kind returns "sysctl".
func (*SysctlDriver) Kind() string { return "sysctl" }

// SysctlSpec sets the kernel parameter named by the resource name.
type SysctlSpec struct {
	Value string `yaml:"value" json:"value"`
}

// NewSpec returns an empty sysctl spec.
func (*SysctlDriver) NewSpec() any { return &SysctlSpec{} }

// Validate is the sysctl kind's one validation.
func (*SysctlDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateSysctl)
}

func validateSysctl(name string, s *SysctlSpec) []config.Problem {
	var p problems
	if _, err := sysctlPath(name); err != nil {
		p.add("", "sysctl: %q is not a valid kernel parameter name", name)
	}
	if normSysctl(s.Value) == "" {
		p.add("", "a sysctl resource needs value")
	}
	return p
}

// sysctlPath is the /proc/sys file of a parameter.
func sysctlPath(name string) (string, error) {
	if !sysctlName.MatchString(name) || strings.Contains(name, "..") {
		return "", fmt.Errorf("sysctl %q: not a kernel parameter name", name)
	}
	if !strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, ".", "/")
	}
	return "/proc/sys/" + name, nil
}

// sysctlConf is the file under /etc/sysctl.d that persists a parameter.
func sysctlConf(name string) string {
	return "/etc/sysctl.d/99-driftless-" + strings.ReplaceAll(name, "/", ".") + ".conf"
}

// normSysctl writes a value in one form: its fields separated by one space.
func normSysctl(v string) string { return strings.Join(strings.Fields(v), " ") }

// Parse reads the parameter's observation (observeNative). Fields: value
// (normalised), persisted (the value in the sysctl.d file, "" without
// one).
func (*SysctlDriver) Parse(r config.Resource, out []byte) (State, error) {
	st := State{Fields: map[string]string{"persisted": ""}}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "value":
			st.Present, st.Fields["value"] = true, normSysctl(v)
		case "persisted":
			st.Fields["persisted"] = normSysctl(v)
		case "":
		default:
			return State{}, fmt.Errorf("parse the observation of sysctl %s: unexpected output %q", r.Name, trimOutput(out))
		}
	}
	return st, nil
}

// query describes a kernel parameter for native observation: its
// /proc/sys file and its sysctl.d file.
func (*SysctlDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := specOf(r, validateSysctl); err != nil {
		return q, err
	}
	p, err := sysctlPath(r.Name)
	if err != nil {
		return q, err
	}
	if q.Path, err = hostPath(root, p); err != nil {
		return q, err
	}
	if q.Conf, err = hostPath(root, sysctlConf(r.Name)); err != nil {
		return q, err
	}
	q.Name = r.Name
	return q, nil
}

// persistedLine is what precedes the persisted value in a sysctl.d
// file: the first "key =".
var persistedLine = regexp.MustCompile(`^[^=#;]*=[[:space:]]*`)

// observeNative prints "value=" and the live value when the kernel has
// the parameter, and "persisted=" and the value in its sysctl.d file when
// there is one.
func (*SysctlDriver) observeNative(_ *observation, q Query) ([]byte, error) {
	var b bytes.Buffer
	if regular(q.Path) {
		v, _ := os.ReadFile(q.Path) // an unreadable parameter reads as "", as cat's does
		fmt.Fprintf(&b, "value=%s\n", bytes.TrimRight(v, "\n"))
	}
	if regular(q.Conf) {
		data, err := os.ReadFile(q.Conf)
		if err != nil {
			return nil, err
		}
		var v string
		for line := range strings.SplitSeq(string(data), "\n") {
			if loc := persistedLine.FindStringIndex(line); loc != nil {
				v = line[loc[1]:]
				break
			}
		}
		fmt.Fprintf(&b, "persisted=%s\n", strings.TrimRight(v, "\n"))
	}
	return b.Bytes(), nil
}

// Diff compares the declared value with the live one.
func (d *SysctlDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, err := specOf(r, validateSysctl)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	want := normSysctl(s.Value)
	switch {
	case !observed.Present:
		c.Action, c.Diff = Update, "value: (no such parameter) -> "+want
	case observed.Fields["value"] != want:
		c.Action, c.Diff = Update, "value: "+observed.Fields["value"]+" -> "+want
	}
	if observed.Present && observed.Fields["persisted"] != want {
		c.Action = Update
		c.Diff = strings.TrimPrefix(c.Diff+"\npersisted: "+orNone(observed.Fields["persisted"])+" -> "+want, "\n")
	}
	return c
}

// Apply writes the declared value, natively (ApplyNative).
func (d *SysctlDriver) Apply(ctx context.Context, t Transport, r config.Resource, _ State) error {
	if _, err := specOf(r, validateSysctl); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepApply, r, State{})
}

// Restore writes back the value the snapshot saw, natively
// (RestoreNative). A parameter that did not exist then has nothing to put
// back.
func (d *SysctlDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if !snapshot.Present {
		return nil
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// ApplyNative is Apply on the host: the value written into /proc/sys and
// the sysctl.d file written, in process.
func (*SysctlDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, _ State) error {
	s, err := specOf(r, validateSysctl)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return writeSysctlNative(ctx, h, r, normSysctl(s.Value), normSysctl(s.Value), "apply")
}

// RestoreNative is Restore on the host.
func (*SysctlDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	if !snapshot.Present {
		return nil
	}
	return writeSysctlNative(ctx, h, r, snapshot.Fields["value"], snapshot.Fields["persisted"], "restore")
}

// writeSysctlNative sets the parameter to v on the host, written into
// its /proc/sys file (what sysctl -w does), then persists persist in the
// sysctl.d file (removing the file when persist is "").
func writeSysctlNative(ctx context.Context, h *Host, r config.Resource, v, persist, what string) error {
	p, err := sysctlPath(r.Name)
	if err != nil {
		return err
	}
	if strings.ContainsAny(v, "\n\x00") {
		return fmt.Errorf("%s %s: the value must be one line", what, r.ID())
	}
	hp, err := hostPath(h.Root(), p)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(hp); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s: no such kernel parameter on this host", what, r.ID())
	}
	f, err := os.OpenFile(hp, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, r.ID(), err)
	}
	_, err = f.WriteString(v + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: set %s: %w", what, r.ID(), strings.TrimPrefix(p, "/proc/sys/"), err)
	}
	conf, err := hostPath(h.Root(), sysctlConf(r.Name))
	if err != nil {
		return err
	}
	if persist == "" {
		if err := os.Remove(conf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s %s: %w", what, r.ID(), err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(conf), 0o777); err != nil {
		return fmt.Errorf("%s %s: %w", what, r.ID(), err)
	}
	line := "# Written by driftless: the declared value survives a reboot.\n" + r.Name + " = " + persist + "\n"
	if _, err := NewLocal(h.Root()).WriteFiles(ctx, []FileWrite{{Path: sysctlConf(r.Name), Data: []byte(line), Mode: 0o644}}); err != nil {
		return fmt.Errorf("%s %s: persist: %w", what, r.ID(), err)
	}
	return nil
}
