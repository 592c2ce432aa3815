package targets

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/driftless/driftless/config"
)

// ServiceDriver manages a systemd unit: its unit file under
// /etc/systemd/system (when declared), whether it is enabled, and whether it
// runs. On a sandbox root (the local transport with a root folder, used by
// demos) only the unit file is managed: systemctl would act on the real
// machine, not on the sandbox.
type ServiceDriver struct{}

var (
	_ Driver    = (*ServiceDriver)(nil)
	_ Refresher = (*ServiceDriver)(nil)
	_ Contents  = (*ServiceDriver)(nil)
)

// Desired implements Contents: the declared unit file, none when the unit
// file is not managed.
func (*ServiceDriver) Desired(r config.Resource, _ State) ([]byte, bool) {
	s, err := specOf(r, validateService)
	if err != nil || s.Unit == "" {
		return nil, false
	}
	return []byte(s.Unit), true
}

// The service states a spec may declare.
const (
	ServiceRunning = "running"
	ServiceStopped = "stopped"
)

// unitMarker separates the answer's fields from the unit file's bytes, which
// follow it verbatim to the end of the service query's answer.
const unitMarker = "--driftless-unit-file--"

// Kind returns "service".
func (*ServiceDriver) Kind() string { return "service" }

// unitName is the systemd unit a resource names: "app" is "app.service".
func unitName(name string) string {
	for _, suffix := range []string{".service", ".socket", ".timer", ".path", ".mount", ".target"} {
		if strings.HasSuffix(name, suffix) {
			return name
		}
	}
	return name + ".service"
}

// unitPath is where the unit file of a resource lives on the host.
func unitPath(name string) string { return "/etc/systemd/system/" + unitName(name) }

// unitRe is a unit name: what systemd allows, not starting with "-".
var unitRe = regexp.MustCompile(`^[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]*$`)

func validUnitName(name string) error {
	if !unitRe.MatchString(name) || len(unitName(name)) > 255 {
		return fmt.Errorf("service %q: not a valid unit name", name)
	}
	return nil
}

// ServiceSpec is the declared spec of a systemd unit named by the resource
// name ("app" means "app.service"). Unit or UnitSource gives the unit
// file's content (config.UnitSpec).
type ServiceSpec struct {
	Unit       string `yaml:"unit" json:"unit,omitempty"`
	UnitSource string `yaml:"unit_source" json:"unit_source,omitempty"`
	State      string `yaml:"state" json:"state,omitempty"` // running | stopped
	Enabled    *bool  `yaml:"enabled" json:"enabled,omitempty"`
	// OnNotify is "restart" (the default) or "reload".
	OnNotify string `yaml:"on_notify" json:"on_notify,omitempty"`
	// Secret marks the unit file as secret, as FileSpec.Secret does; the
	// loader sets it when unit_source is a SOPS or age file.
	Secret bool `yaml:"secret" json:"secret,omitempty"`
}

var _ config.UnitSpec = (*ServiceSpec)(nil)

// IsSecret implements config.SecretSpec.
func (s *ServiceSpec) IsSecret() bool { return s.Secret }

// MarkSecret implements config.SecretSpec.
func (s *ServiceSpec) MarkSecret() { s.Secret = true }

// UnitFrom implements config.UnitSpec.
func (s *ServiceSpec) UnitFrom() (unit, source string) { return s.Unit, s.UnitSource }

// SetUnit implements config.UnitSpec.
func (s *ServiceSpec) SetUnit(unit string) { s.Unit = unit }

// NewSpec returns an empty service spec.
func (*ServiceDriver) NewSpec() any { return &ServiceSpec{} }

// Validate is the service kind's one validation.
func (*ServiceDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateService)
}

func validateService(name string, s *ServiceSpec) []config.Problem {
	var p problems
	if validUnitName(name) != nil {
		p.add("", "service: %q is not a valid unit name (letters, digits, : _ . @ -, at most 255 characters with its suffix)", name)
	}
	p.oneOf("state", s.State, ServiceRunning, ServiceStopped)
	p.oneOf("on_notify", s.OnNotify, "restart", "reload")
	return p
}

// Parse reads the service query's answer. Fields: load, active, enabled (systemd's
// values), unitfile ("1" when the unit file exists), sandbox.
func (*ServiceDriver) Parse(r config.Resource, out []byte) (State, error) {
	head, body, ok := bytes.Cut(out, []byte(unitMarker+"\n"))
	if !ok {
		return State{}, fmt.Errorf("parse service probe of %s: no unit marker in %q", r.Name, trimOutput(out))
	}
	st := State{Fields: map[string]string{}}
	keys := map[string]string{"LoadState": "load", "ActiveState": "active", "UnitFileState": "enabled", "sandbox": "sandbox"}
	for _, line := range strings.Split(string(head), "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if f, ok := keys[k]; ok {
			st.Fields[f] = v
		}
	}
	if rest, ok := bytes.CutPrefix(body, []byte("unitfile=1\n")); ok {
		st.Fields["unitfile"] = "1"
		st.Content = append([]byte(nil), rest...)
	}
	st.Present = st.Fields["unitfile"] == "1" || (st.Fields["load"] != "" && st.Fields["load"] != "not-found")
	return st, nil
}

// query describes a service for native observation: its unit and its
// unit file. Under a sandbox root only the unit file is read: systemd is
// the daemon's machine's, not the sandbox's.
func (*ServiceDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	if _, err := specOf(r, validateService); err != nil {
		return q, err
	}
	p, err := hostPath(root, unitPath(r.Name))
	if err != nil {
		return q, err
	}
	q.Name, q.Path, q.Sandbox = unitName(r.Name), p, root != ""
	return q, nil
}

// observeNative prints what `systemctl show -p LoadState -p ActiveState
// -p UnitFileState` prints, asked of systemd over D-Bus, then the unit
// marker and, when the unit file exists, "unitfile=1" and its content.
// Under a sandbox root it prints "sandbox=1" instead of systemd's view.
func (*ServiceDriver) observeNative(o *observation, q Query) ([]byte, error) {
	if q.Sandbox {
		return unitFile([]byte("sandbox=1\n"), q.Path)
	}
	if err := systemdRunning(); err != nil {
		return nil, err
	}
	if o.bus == nil && o.busErr == nil {
		// systemctl's own way: the system bus, else systemd's private
		// socket for root.
		o.bus, o.busErr = sddbus.NewWithContext(o.ctx)
	}
	if o.busErr != nil {
		return nil, fmt.Errorf("connect to systemd: %w", o.busErr)
	}
	props, err := o.bus.GetUnitPropertiesContext(o.ctx, q.Name)
	if err != nil {
		return nil, fmt.Errorf("systemd properties of %s: %w", q.Name, err)
	}
	var b bytes.Buffer
	for _, k := range []string{"LoadState", "ActiveState", "UnitFileState"} {
		v, _ := props[k].(string)
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return unitFile(b.Bytes(), q.Path)
}

// unitFile appends to head the unit marker and, when the unit file p
// exists, "unitfile=1" and its content.
func unitFile(head []byte, p string) ([]byte, error) {
	b := append(head, unitMarker+"\n"...)
	if !regular(p) {
		return b, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read unit file: %w", err)
	}
	return append(append(b, "unitfile=1\n"...), data...), nil
}

// isEnabled says whether an UnitFileState counts as enabled.
func isEnabled(state string) bool {
	switch state {
	case "enabled", "enabled-runtime", "alias", "linked", "linked-runtime":
		return true
	}
	return false
}

// isRunning says whether an ActiveState counts as running.
func isRunning(state string) bool {
	return state == "active" || state == "reloading" || state == "activating"
}

// serviceDiffs lists what differs: "unit file" first, then enabled and state.
func serviceDiffs(r config.Resource, s *ServiceSpec, st State) (diffs []string, unitChanged bool) {
	if s.Unit != "" && (st.Fields["unitfile"] != "1" || !bytes.Equal(st.Content, []byte(s.Unit))) {
		unitChanged = true
		old := st.Content
		if st.Fields["unitfile"] != "1" {
			old = nil
		}
		diffs = append(diffs, strings.TrimRight(UnifiedDiff(unitPath(r.Name), unitPath(r.Name), old, []byte(s.Unit)), "\n"))
	}
	if st.Fields["sandbox"] == "1" {
		return diffs, unitChanged
	}
	if s.Enabled != nil && *s.Enabled != isEnabled(st.Fields["enabled"]) {
		diffs = append(diffs, fmt.Sprintf("enabled: %s -> %t", orNone(st.Fields["enabled"]), *s.Enabled))
	}
	switch {
	case s.State == ServiceRunning && !isRunning(st.Fields["active"]):
		diffs = append(diffs, "state: "+orNone(st.Fields["active"])+" -> running")
	case s.State == ServiceStopped && isRunning(st.Fields["active"]):
		diffs = append(diffs, "state: "+st.Fields["active"]+" -> stopped")
	case unitChanged && s.State == ServiceRunning:
		diffs = append(diffs, "state: restart (unit file changed)")
	}
	return diffs, unitChanged
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Diff compares the declared unit with the observed one.
func (d *ServiceDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, err := specOf(r, validateService)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	diffs, _ := serviceDiffs(r, s, observed)
	c.Action = action(observed.Present || len(diffs) == 0, diffs)
	c.Diff = strings.Join(diffs, "\n")
	return c
}

// Apply writes the unit file (atomically) and reloads systemd when it
// changed, then enables or disables the unit, then starts, restarts or
// stops it, natively (ApplyNative). A running unit whose file changed is
// restarted.
func (d *ServiceDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, err := specOf(r, validateService)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if s.Unit == "" && s.UnitSource != "" {
		return fmt.Errorf("apply %s: unit_source %s was not loaded into the unit's content", r.ID(), s.UnitSource)
	}
	return onlyNative(ctx, t, StepApply, r, observed)
}

// Restore puts back the snapshot natively (RestoreNative): the old unit
// file (or none), then the old enabled and running states.
func (d *ServiceDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if err := validUnitName(r.Name); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// Refresh restarts the unit, or reloads it when on_notify is reload,
// natively (RefreshNative). A unit that is not running is left stopped:
// a notify never starts it.
func (d *ServiceDriver) Refresh(ctx context.Context, t Transport, r config.Resource) error {
	if err := validUnitName(r.Name); err != nil {
		return fmt.Errorf("refresh %s: %w", r.ID(), err)
	}
	return onlyNative(ctx, t, StepRefresh, r, State{})
}
