package targets

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
)

// RouteDriver keeps one route of the main table: its name is the
// destination (10.1.0.0/16, or default for the IPv4 default route), its
// spec the gateway (via) and/or the device (dev). It observes with `ip -j
// route show to exact TO` and changes with `ip route replace` / `ip route
// del`. Like every network driver, its Apply is commit-confirmed (see
// ApplyConfirmed) and it refuses a sandbox root.
type RouteDriver struct {
	// ConfirmTimeout is how long the host waits for the confirmation
	// before reverting; zero means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
}

var _ Driver = (*RouteDriver)(nil)

// Kind returns "route".
func (*RouteDriver) Kind() string { return "route" }

// RouteSpec is a route; in YAML `route: {to: 10.1.0.0/16, via: 10.0.0.1}`.
// Its name is To.
type RouteSpec struct {
	To    string `yaml:"to" json:"to"`
	Via   string `yaml:"via" json:"via,omitempty"`
	Dev   string `yaml:"dev" json:"dev,omitempty"`
	State string `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty route spec.
func (*RouteDriver) NewSpec() any { return &RouteSpec{} }

// Name is a route's name: its destination.
func (*RouteDriver) Name(spec any) string {
	if s, ok := spec.(*RouteSpec); ok {
		return s.To
	}
	return ""
}

// Validate is the route kind's one validation.
func (*RouteDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateRoute)
}

func validateRoute(name string, s *RouteSpec) []config.Problem {
	var p problems
	to := s.To
	if to == "" {
		to = name
	}
	if to == "" {
		p.add("", "a route needs to (a destination in CIDR form, or default)")
	} else if _, err := netip.ParsePrefix(to); err != nil && to != "default" {
		p.add("to", "to: %q is not a destination in CIDR form such as 10.1.0.0/16, or default", to)
	}
	if s.Via == "" && s.Dev == "" && s.State != config.Absent {
		p.add("", "a route needs via or dev")
	}
	if _, err := netip.ParseAddr(s.Via); s.Via != "" && err != nil {
		p.add("via", "via: %q is not an IP address", s.Via)
	}
	if s.Dev != "" && !ifName.MatchString(s.Dev) {
		p.add("dev", "dev: %q is not an interface name (at most 15 characters: letters, digits, _ . : @ -)", s.Dev)
	}
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// routeDst returns the spec of r, its destination as ip prints it
// ("default", "10.1.0.0/16", "10.0.0.5" for a host route) and the family
// flag of ip ("-4" or "-6").
func routeDst(r config.Resource) (*RouteSpec, string, string, error) {
	s, err := specOf(r, validateRoute)
	if err != nil {
		return nil, "", "", err
	}
	to := s.To
	if to == "" {
		to = r.Name
	}
	if to == "default" {
		return s, "default", "-4", nil
	}
	p, err := netip.ParsePrefix(to)
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: %q is not a destination in CIDR form or default: %w", r.ID(), to, err)
	}
	p = p.Masked()
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	switch {
	case p.Bits() == 0:
		return s, "default", fam, nil
	case p.IsSingleIP():
		return s, p.Addr().String(), fam, nil
	}
	return s, p.String(), fam, nil
}

// Probe prints the routes to exactly the destination as JSON.
func (*RouteDriver) Probe(r config.Resource, root string) string {
	_, dst, fam, err := routeDst(r)
	if err != nil {
		return probeError(err)
	}
	if root != "" {
		return probeError(errSandbox(r.ID()))
	}
	return "ip " + fam + " -j route show to exact " + shq(dst)
}

// ipRouteJSON is the part of `ip -j route` output the driver reads.
type ipRouteJSON struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Metric   *int   `json:"metric"`
	Protocol string `json:"protocol"`
	Type     string `json:"type"`
}

// Parse reads the first route to the destination. Fields: via, dev, metric,
// protocol (each "" when ip printed none), count (routes to it).
func (*RouteDriver) Parse(r config.Resource, out []byte) (State, error) {
	_, dst, _, err := routeDst(r)
	if err != nil {
		return State{}, err
	}
	var routes []ipRouteJSON
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &routes); err != nil {
			return State{}, fmt.Errorf("parse routes to %s: %w", dst, err)
		}
	}
	st := State{Fields: map[string]string{}}
	n := 0
	for _, rt := range routes {
		if rt.Dst != dst || (rt.Type != "" && rt.Type != "unicast") {
			continue
		}
		n++
		if n > 1 {
			continue
		}
		st.Present = true
		st.Fields["via"], st.Fields["dev"], st.Fields["protocol"] = rt.Gateway, rt.Dev, rt.Protocol
		if rt.Metric != nil {
			st.Fields["metric"] = strconv.Itoa(*rt.Metric)
		}
	}
	st.Fields["count"] = strconv.Itoa(n)
	return st, nil
}

// Diff compares the declared route with the live one.
func (d *RouteDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, dst, _, err := routeDst(r)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	f := observed.Fields
	if s.State == config.Absent {
		if observed.Present {
			c.Action, c.Diff = Delete, "route: "+describeRoute(dst, f["via"], f["dev"])+" -> (absent)"
		}
		return c
	}
	want := describeRoute(dst, s.Via, s.Dev)
	var diffs []string
	switch {
	case !observed.Present:
		diffs = append(diffs, "route: (absent) -> "+want)
	default:
		if s.Via != "" && f["via"] != s.Via {
			diffs = append(diffs, "via: "+orNone(f["via"])+" -> "+s.Via)
		}
		if s.Dev != "" && f["dev"] != s.Dev {
			diffs = append(diffs, "dev: "+orNone(f["dev"])+" -> "+s.Dev)
		}
		if f["count"] != "1" {
			diffs = append(diffs, "routes to "+dst+": "+f["count"]+" -> 1")
		}
	}
	c.Action, c.Diff = action(observed.Present, diffs), strings.Join(diffs, "\n")
	return c
}

// describeRoute writes a route as ip would take it.
func describeRoute(dst, via, dev string) string {
	out := dst
	if via != "" {
		out += " via " + via
	}
	if dev != "" {
		out += " dev " + dev
	}
	return out
}

// routeArgs are the arguments of `ip route add` for a route in a state.
func routeArgs(dst string, f map[string]string) string {
	args := shq(dst)
	for _, k := range []string{"via", "dev", "metric"} {
		if f[k] != "" {
			args += " " + k + " " + shq(f[k])
		}
	}
	if p := f["protocol"]; p != "" && p != "boot" {
		args += " proto " + shq(p)
	}
	return args
}

// setRoutes is the script that removes every route to dst of the family
// and adds the one described by f (none when f is nil). It stops after 64
// deletions so that a kernel that refuses one cannot loop it forever.
func setRoutes(fam, dst string, f map[string]string) string {
	script := "i=0; while [ $i -lt 64 ] && ip " + fam + " route del " + shq(dst) + " 2>/dev/null; do i=$((i+1)); done\n"
	if f != nil {
		script += "ip " + fam + " route add " + routeArgs(dst, f) + "\n"
	}
	return script
}

// Apply replaces or removes the route, commit-confirmed.
func (d *RouteDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, dst, fam, err := routeDst(r)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("apply %w", errSandbox(r.ID()))
	}
	var prev map[string]string
	if observed.Present {
		prev = observed.Fields
	}
	var script string
	if s.State == config.Absent {
		script = setRoutes(fam, dst, nil)
	} else {
		// The observed metric is kept, so that the replace changes the live
		// route instead of adding a second one beside it. Extra routes to
		// the same destination are removed first, then the route is added.
		want := map[string]string{"via": s.Via, "dev": s.Dev, "metric": observed.Fields["metric"]}
		script = "set -e\nip " + fam + " route replace " + routeArgs(dst, want) + "\n"
		if n, _ := strconv.Atoi(observed.Fields["count"]); n > 1 {
			script = setRoutes(fam, dst, want)
		}
	}
	err = ApplyConfirmed(ctx, t, d.ConfirmTimeout, setRoutes(fam, dst, prev), func(ctx context.Context) error {
		return runScript(ctx, t, "apply "+r.ID(), script)
	})
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// Restore puts back the route the snapshot saw, or its absence.
func (d *RouteDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	_, dst, fam, err := routeDst(r)
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("restore %w", errSandbox(r.ID()))
	}
	var prev map[string]string
	if snapshot.Present {
		prev = snapshot.Fields
	}
	return runScript(ctx, t, "restore "+r.ID(), setRoutes(fam, dst, prev))
}
