package targets

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/driftless/driftless/config"
)

// AddressDriver puts an IP address on an interface. The resource name is
// the address in CIDR form (10.0.0.5/24); the address is identified by its
// IP, so the same IP with another prefix length is an update, not a second
// address. It observes with `ip -j addr show dev IF` and changes with `ip
// addr replace` / `ip addr del`.
//
// Apply is commit-confirmed (see ApplyConfirmed): before the change, the
// host arms a revert to the observed state, disarmed only once a new
// connection reaches it. Network resources refuse a sandbox root, since
// they would change the network of the machine driftless runs on.
type AddressDriver struct {
	// ConfirmTimeout is how long the host waits for the confirmation
	// before reverting; zero means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
}

var (
	_ Driver     = (*AddressDriver)(nil)
	_ NativeKind = (*AddressDriver)(nil)
)

// Kind returns "address".
func (*AddressDriver) Kind() string { return "address" }

// AddressSpec puts the address named by the resource (CIDR form, e.g.
// 10.0.0.5/24) on an interface.
type AddressSpec struct {
	Interface string `yaml:"interface" json:"interface"`
	State     string `yaml:"state" json:"state,omitempty"`
}

// NewSpec returns an empty address spec.
func (*AddressDriver) NewSpec() any { return &AddressSpec{} }

// Validate is the address kind's one validation.
func (*AddressDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateAddress)
}

func validateAddress(name string, s *AddressSpec) []config.Problem {
	var p problems
	if _, err := netip.ParsePrefix(name); err != nil {
		p.add("", "address: %q is not an address in CIDR form such as 10.0.0.5/24", name)
	}
	p.required("address", "interface", s.Interface)
	if s.Interface != "" && !ifName.MatchString(s.Interface) {
		p.add("interface", "interface: %q is not an interface name (at most 15 characters: letters, digits, _ . : @ -)", s.Interface)
	}
	p.oneOf("state", s.State, config.Present, config.Absent)
	return p
}

// addressOf checks r and returns its spec, its address and interface.
func addressOf(r config.Resource) (*AddressSpec, netip.Prefix, error) {
	s, err := specOf(r, validateAddress)
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	p, err := netip.ParsePrefix(r.Name)
	if err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("%s: not an address in CIDR form such as 10.0.0.5/24: %w", r.ID(), err)
	}
	return s, p, nil
}

// errSandbox is the refusal of network resources on a sandbox root.
func errSandbox(id string) error {
	return fmt.Errorf("%s: network resources need a real host, not a sandbox root", id)
}

// ipAddrJSON is the part of `ip -j addr` output the driver reads.
type ipAddrJSON struct {
	Ifname   string `json:"ifname"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// Parse finds the resource's IP among the interface's addresses. Fields:
// interface, address (the CIDR found, with its live prefix length).
func (*AddressDriver) Parse(r config.Resource, out []byte) (State, error) {
	s, want, err := addressOf(r)
	if err != nil {
		return State{}, err
	}
	var links []ipAddrJSON
	if err := json.Unmarshal(out, &links); err != nil {
		return State{}, fmt.Errorf("parse addresses of %s: %w", s.Interface, err)
	}
	st := State{Fields: map[string]string{"interface": s.Interface}}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			ip, err := netip.ParseAddr(a.Local)
			if err != nil || ip != want.Addr() {
				continue
			}
			st.Present = true
			st.Fields["address"] = a.Local + "/" + strconv.Itoa(a.Prefixlen)
		}
	}
	return st, nil
}

// query describes an address for native observation: its interface.
func (*AddressDriver) query(r config.Resource, root string) (Query, error) {
	q := Query{Kind: r.Kind}
	s, _, err := addressOf(r)
	switch {
	case err != nil:
		return q, err
	case root != "":
		return q, errSandbox(r.ID())
	}
	q.Name = s.Interface
	return q, nil
}

// ipAddrOut and ipAddrInfoOut are what `ip -j addr` prints of the fields
// the address kind reads, with ip's names.
type ipAddrOut struct {
	Ifname   string          `json:"ifname"`
	AddrInfo []ipAddrInfoOut `json:"addr_info"`
}

type ipAddrInfoOut struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	Prefixlen int    `json:"prefixlen"`
}

// observeNative prints what `ip -j addr show dev IF` prints of the
// interface q.Name's addresses, asked over netlink; a missing interface
// fails as ip does.
func (*AddressDriver) observeNative(o *observation, q Query) ([]byte, error) {
	h, err := o.netHandle()
	if err != nil {
		return nil, err
	}
	link, err := h.LinkByName(q.Name)
	if err != nil {
		//lint:ignore ST1005 ip's own message
		return nil, fmt.Errorf("Device %q does not exist.", q.Name)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", q.Name, err)
	}
	a := ipAddrOut{Ifname: link.Attrs().Name, AddrInfo: []ipAddrInfoOut{}}
	for _, ad := range addrs {
		fam := "inet"
		if ad.IP.To4() == nil {
			fam = "inet6"
		}
		ones, _ := ad.Mask.Size()
		a.AddrInfo = append(a.AddrInfo, ipAddrInfoOut{Family: fam, Local: ad.IP.String(), Prefixlen: ones})
	}
	return json.Marshal([]ipAddrOut{a})
}

// netHandle is the batch's netlink socket, opened at its first network
// query.
func (o *observation) netHandle() (*netlink.Handle, error) {
	if o.nl == nil && o.nlErr == nil {
		o.nl, o.nlErr = netlink.NewHandle()
		if o.nlErr != nil {
			o.nlErr = fmt.Errorf("open a netlink socket: %w", o.nlErr)
		}
	}
	return o.nl, o.nlErr
}

// Diff compares the declared address with the interface's.
func (d *AddressDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: d.Kind(), Before: observed, Action: NoChange}
	s, want, err := addressOf(r)
	if err != nil {
		c.Action, c.Diff = Update, "error: "+err.Error()
		return c
	}
	have := observed.Fields["address"]
	switch {
	case s.State == config.Absent && observed.Present:
		c.Action, c.Diff = Delete, "address: "+have+" on "+s.Interface+" -> (absent)"
	case s.State == config.Absent:
	case !observed.Present:
		c.Action, c.Diff = Create, "address: (absent) -> "+want.String()+" on "+s.Interface
	case have != want.String():
		c.Action, c.Diff = Update, "address: "+have+" -> "+want.String()+" on "+s.Interface
	}
	return c
}

// setAddress is the script that leaves the interface with exactly cidr for
// the IP of prev (or no address for that IP when cidr is ""), given the
// live CIDR prev ("" when absent). The new address is added before the old
// one goes, so that a prefix change never leaves the IP unreachable.
func setAddress(dev, prev, cidr string) string {
	script := "set -e\n"
	if cidr != "" {
		script += "ip addr replace " + shq(cidr) + " dev " + shq(dev) + "\n"
	}
	if prev != "" && prev != cidr {
		script += "ip addr del " + shq(prev) + " dev " + shq(dev) + "\n"
	}
	return script
}

// Apply adds, changes or removes the address, commit-confirmed.
func (d *AddressDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	s, want, err := addressOf(r)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("apply %w", errSandbox(r.ID()))
	}
	prev, target := addressChange(s, want, observed)
	restore := setAddress(s.Interface, target, prev)
	err = ApplyConfirmed(ctx, t, d.ConfirmTimeout, restore, func(ctx context.Context) error {
		return onlyNative(ctx, t, StepApply, r, observed)
	})
	if err != nil {
		return fmt.Errorf("apply %s on %s: %w", r.ID(), s.Interface, err)
	}
	return nil
}

// Restore puts back the address the snapshot saw, or removes the declared
// one when there was none.
func (d *AddressDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if _, _, err := addressOf(r); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	if t.Root() != "" {
		return fmt.Errorf("restore %w", errSandbox(r.ID()))
	}
	return onlyNative(ctx, t, StepRestore, r, snapshot)
}

// addressChange is the live CIDR of the declared IP before an apply ("" when
// absent) and the one the apply leaves ("" to remove it).
func addressChange(s *AddressSpec, want netip.Prefix, observed State) (prev, target string) {
	if observed.Present {
		prev = observed.Fields["address"]
	}
	if s.State != config.Absent {
		target = want.String()
	}
	return prev, target
}

// ApplyNative is Apply on the host, over netlink: the address added (or
// replaced) before the old prefix goes, as setAddress does. The driver's
// Apply arms the revert around it.
func (*AddressDriver) ApplyNative(_ context.Context, _ *Host, r config.Resource, observed State) error {
	s, want, err := addressOf(r)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	prev, target := addressChange(s, want, observed)
	if err := setAddressNative(s.Interface, prev, target); err != nil {
		return fmt.Errorf("apply %s on %s: %w", r.ID(), s.Interface, err)
	}
	return nil
}

// RestoreNative is Restore on the host: the live address of the declared
// IP is read again, the snapshot's put back, the other removed.
func (*AddressDriver) RestoreNative(_ context.Context, _ *Host, r config.Resource, snapshot State) error {
	s, want, err := addressOf(r)
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	prev := ""
	if snapshot.Present {
		prev = snapshot.Fields["address"]
	}
	h, link, err := netLink(s.Interface)
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	defer h.Close()
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("restore %s: addresses of %s: %w", r.ID(), s.Interface, err)
	}
	cur := ""
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == want.Addr() {
			ones, _ := a.Mask.Size()
			cur = want.Addr().String() + "/" + strconv.Itoa(ones)
			break
		}
	}
	if err := setAddressOn(h, link, cur, prev); err != nil {
		return fmt.Errorf("restore %s on %s: %w", r.ID(), s.Interface, err)
	}
	return nil
}

// netLink opens a netlink socket and finds the interface dev; the caller
// closes the handle.
func netLink(dev string) (*netlink.Handle, netlink.Link, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, nil, fmt.Errorf("open a netlink socket: %w", err)
	}
	link, err := h.LinkByName(dev)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("interface %s: %w", dev, err)
	}
	return h, link, nil
}

// setAddressNative is setAddress over netlink.
func setAddressNative(dev, prev, cidr string) error {
	h, link, err := netLink(dev)
	if err != nil {
		return err
	}
	defer h.Close()
	return setAddressOn(h, link, prev, cidr)
}

// setAddressOn leaves link with cidr instead of prev (each "" for none):
// the new address first (ip addr replace), then the old one removed.
func setAddressOn(h *netlink.Handle, link netlink.Link, prev, cidr string) error {
	if cidr != "" {
		a, err := ipAddr(cidr)
		if err != nil {
			return err
		}
		if err := h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("add %s: %w", cidr, err)
		}
	}
	if prev != "" && prev != cidr {
		a, err := ipAddr(prev)
		if err != nil {
			return err
		}
		if err := h.AddrDel(link, a); err != nil {
			return fmt.Errorf("remove %s: %w", prev, err)
		}
	}
	return nil
}

// ipAddr is a CIDR as `ip addr add` takes it: no broadcast address unless
// asked (netlink would compute one; ip does not).
func ipAddr(cidr string) (*netlink.Addr, error) {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", cidr, err)
	}
	a.Broadcast = net.IPv4zero
	return a, nil
}
