package targets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

var (
	_ Driver     = (*RouteDriver)(nil)
	_ NativeKind = (*RouteDriver)(nil)
)

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

// query describes a route for native observation: its destination as ip
// names it and its family.
func (*RouteDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	_, dst, fam, err := routeDst(r)
	switch {
	case err != nil:
		return q, err
	case root != "":
		return q, errSandbox(r.ID())
	}
	q.Name, q.Family = dst, "inet"
	if fam == "-6" {
		q.Family = "inet6"
	}
	return q, nil
}

// ipRouteOut is what `ip -j route` prints of the fields the route kind
// reads, with ip's names.
type ipRouteOut struct {
	Type     string `json:"type,omitempty"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Metric   *int   `json:"metric,omitempty"`
}

// observeNative prints what `ip -4|-6 -j route show to exact DST` prints,
// asked over netlink: the main table's routes to exactly q.Name
// ("default", a prefix, or an address for a host route) in family
// q.Family.
func (*RouteDriver) observeNative(o *observation, q Query) ([]byte, error) {
	h, err := o.netHandle()
	if err != nil {
		return nil, err
	}
	fam := netlink.FAMILY_V4
	if q.Family == "inet6" {
		fam = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(fam, &netlink.Route{}, 0)
	if err != nil {
		return nil, fmt.Errorf("routes to %s: %w", q.Name, err)
	}
	out := []ipRouteOut{}
	for _, rt := range routes {
		if RouteDstName(rt.Dst) != q.Name {
			continue
		}
		r := ipRouteOut{Dst: q.Name, Protocol: RouteProtocolName(int(rt.Protocol))}
		if rt.Type != unix.RTN_UNICAST {
			r.Type = strconv.Itoa(rt.Type)
		}
		if rt.Gw != nil {
			r.Gateway = rt.Gw.String()
		}
		if rt.LinkIndex > 0 {
			if r.Dev, err = o.linkName(h, rt.LinkIndex); err != nil {
				return nil, err
			}
		}
		if rt.Priority != 0 {
			m := rt.Priority
			r.Metric = &m
		}
		out = append(out, r)
	}
	return json.Marshal(out)
}

// linkName is an interface's name by index, asked once per batch.
func (o *observation) linkName(h *netlink.Handle, index int) (string, error) {
	if n, ok := o.links[index]; ok {
		return n, nil
	}
	l, err := h.LinkByIndex(index)
	if err != nil {
		return "", fmt.Errorf("interface %d: %w", index, err)
	}
	o.links[index] = l.Attrs().Name
	return l.Attrs().Name, nil
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
	_, dst, fam, err := routeDst(r)
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
	err = ApplyConfirmed(ctx, t, d.ConfirmTimeout, setRoutes(fam, dst, prev), func(ctx context.Context) error {
		return onlyNative(ctx, t, StepApply, r, observed)
	})
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// Restore puts back the route the snapshot saw, or its absence.
func (d *RouteDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if _, _, _, err := routeDst(r); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("restore %w", errSandbox(r.ID()))
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// routeWanted is the route an apply leaves (nil: none), and whether it
// replaces the one live route (else every route to the destination is
// removed first). The observed metric is kept, so that the replace
// changes the live route instead of adding a second one beside it.
func routeWanted(s *RouteSpec, observed State) (map[string]string, bool) {
	if s.State == config.Absent {
		return nil, false
	}
	want := map[string]string{"via": s.Via, "dev": s.Dev, "metric": observed.Fields["metric"]}
	n, _ := strconv.Atoi(observed.Fields["count"])
	return want, n <= 1
}

// ApplyNative is Apply on the host, over netlink (RouteReplace, or every
// route to the destination deleted and the declared one added). The
// driver's Apply arms the revert around it.
func (*RouteDriver) ApplyNative(_ context.Context, _ *Host, r config.Resource, observed State) error {
	s, dst, fam, err := routeDst(r)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	want, replace := routeWanted(s, observed)
	if err := setRoutesNative(fam, dst, want, replace); err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// RestoreNative is Restore on the host: every route to the destination
// removed, the snapshot's put back.
func (*RouteDriver) RestoreNative(_ context.Context, _ *Host, r config.Resource, snapshot State) error {
	_, dst, fam, err := routeDst(r)
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	var prev map[string]string
	if snapshot.Present {
		prev = snapshot.Fields
	}
	if err := setRoutesNative(fam, dst, prev, false); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return nil
}

// setRoutesNative is setRoutes over netlink: with replace, the route f
// replaces the live one (ip route replace); without, every main-table
// route to dst of the family is deleted (at most 64) and f, when not nil,
// added.
func setRoutesNative(fam, dst string, f map[string]string, replace bool) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open a netlink socket: %w", err)
	}
	defer h.Close()
	family := netlink.FAMILY_V4
	if fam == "-6" {
		family = netlink.FAMILY_V6
	}
	var rt *netlink.Route
	if f != nil {
		if rt, err = nlRoute(h, family, dst, f); err != nil {
			return err
		}
	}
	if replace && rt != nil {
		if err := h.RouteReplace(rt); err != nil {
			return fmt.Errorf("replace the route to %s: %w", dst, err)
		}
		return nil
	}
	// The main table only, as ip route del: the listing without a table
	// filter holds nothing else.
	live, err := h.RouteListFiltered(family, &netlink.Route{}, 0)
	if err != nil {
		return fmt.Errorf("routes to %s: %w", dst, err)
	}
	n := 0
	for _, l := range live {
		if RouteDstName(l.Dst) != dst || n == 64 {
			continue
		}
		n++
		if err := h.RouteDel(&l); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete a route to %s: %w", dst, err)
		}
	}
	if rt != nil {
		if err := h.RouteAdd(rt); err != nil {
			return fmt.Errorf("add the route to %s: %w", dst, err)
		}
	}
	return nil
}

// nlRoute is the route `ip route add DST via dev metric proto` adds, as
// routeArgs writes it from f.
func nlRoute(h *netlink.Handle, family int, dst string, f map[string]string) (*netlink.Route, error) {
	rt := &netlink.Route{Family: family}
	if dst == "default" {
		bits := 32
		if family == netlink.FAMILY_V6 {
			bits = 128
		}
		rt.Dst = &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}
	} else {
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			a, aerr := netip.ParseAddr(dst)
			if aerr != nil {
				return nil, fmt.Errorf("route destination %q: %w", dst, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		rt.Dst = &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	if v := f["via"]; v != "" {
		gw, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("gateway %q: %w", v, err)
		}
		rt.Gw = gw.AsSlice()
	} else if family == netlink.FAMILY_V4 {
		// ip gives an IPv4 route without a gateway the link scope.
		rt.Scope = netlink.SCOPE_LINK
	}
	if d := f["dev"]; d != "" {
		link, err := h.LinkByName(d)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", d, err)
		}
		rt.LinkIndex = link.Attrs().Index
	}
	if m := f["metric"]; m != "" {
		v, err := strconv.Atoi(m)
		if err != nil {
			return nil, fmt.Errorf("metric %q: %w", m, err)
		}
		rt.Priority = v
	}
	if p := f["protocol"]; p != "" {
		n, err := routeProtocolNumber(p)
		if err != nil {
			return nil, err
		}
		rt.Protocol = netlink.RouteProtocol(n)
	}
	return rt, nil
}

// routeProtocols are ip's names of route protocols (its rt_protos table);
// "boot", the protocol of routes added by hand, ip prints as none.
func routeProtocols() map[int]string {
	return map[int]string{
		unix.RTPROT_UNSPEC: "unspec", unix.RTPROT_REDIRECT: "redirect", unix.RTPROT_KERNEL: "kernel",
		unix.RTPROT_BOOT: "", unix.RTPROT_STATIC: "static", unix.RTPROT_GATED: "gated", unix.RTPROT_RA: "ra",
		unix.RTPROT_MRT: "mrt", unix.RTPROT_ZEBRA: "zebra", unix.RTPROT_BIRD: "bird", unix.RTPROT_BABEL: "babel",
		unix.RTPROT_DNROUTED: "dnrouted", unix.RTPROT_XORP: "xorp", unix.RTPROT_NTK: "ntk", unix.RTPROT_DHCP: "dhcp",
		unix.RTPROT_KEEPALIVED: "keepalived", unix.RTPROT_BGP: "bgp", unix.RTPROT_ISIS: "isis",
		unix.RTPROT_OSPF: "ospf", unix.RTPROT_RIP: "rip", unix.RTPROT_EIGRP: "eigrp",
	}
}

// RouteProtocolName is ip's name of a route protocol: "" for boot, the
// number when ip has no name for it.
func RouteProtocolName(p int) string {
	if n, ok := routeProtocols()[p]; ok {
		return n
	}
	return strconv.Itoa(p)
}

// routeProtocolNumber reads a protocol as RouteProtocolName writes it, or
// as ip takes it ("boot").
func routeProtocolNumber(name string) (int, error) {
	if name == "boot" {
		return unix.RTPROT_BOOT, nil
	}
	for n, s := range routeProtocols() {
		if s == name && s != "" {
			return n, nil
		}
	}
	n, err := strconv.Atoi(name)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("route protocol %q: not one ip knows", name)
	}
	return n, nil
}

// RouteDstName is ip's name of a route's destination: "default", an
// address for a host route, else the prefix.
func RouteDstName(dst *net.IPNet) string {
	if dst == nil {
		return "default"
	}
	ones, bits := dst.Mask.Size()
	switch ones {
	case 0:
		return "default"
	case bits:
		return dst.IP.String()
	}
	return dst.String()
}
