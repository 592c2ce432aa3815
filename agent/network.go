package agent

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/driftless/driftless/targets"
)

// ipAddr and ipRoute are the parts of `ip -j addr` and `ip -j route` that
// the address and route kinds read, with ip's names.
type ipAddr struct {
	Ifname   string       `json:"ifname"`
	AddrInfo []ipAddrInfo `json:"addr_info"`
}

type ipAddrInfo struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	Prefixlen int    `json:"prefixlen"`
}

type ipRoute struct {
	Type     string `json:"type,omitempty"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Metric   *int   `json:"metric,omitempty"`
}

// netHandle is the batch's netlink socket, opened at its first network
// query.
func (o *observer) netHandle() (*netlink.Handle, error) {
	if o.nl == nil && o.nlErr == nil {
		o.nl, o.nlErr = netlink.NewHandle()
		if o.nlErr != nil {
			o.nlErr = fmt.Errorf("open a netlink socket: %w", o.nlErr)
		}
	}
	return o.nl, o.nlErr
}

// address prints what `ip -j addr show dev IF` prints of the interface
// q.Name's addresses, asked over netlink; a missing interface fails as
// ip does.
func (o *observer) address(q targets.Query) ([]byte, error) {
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
	a := ipAddr{Ifname: link.Attrs().Name, AddrInfo: []ipAddrInfo{}}
	for _, ad := range addrs {
		fam := "inet"
		if ad.IP.To4() == nil {
			fam = "inet6"
		}
		ones, _ := ad.Mask.Size()
		a.AddrInfo = append(a.AddrInfo, ipAddrInfo{Family: fam, Local: ad.IP.String(), Prefixlen: ones})
	}
	return json.Marshal([]ipAddr{a})
}

// route prints what `ip -4|-6 -j route show to exact DST` prints, asked
// over netlink: the main table's routes to exactly q.Name ("default", a
// prefix, or an address for a host route) in family q.Family.
func (o *observer) route(q targets.Query) ([]byte, error) {
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
	out := []ipRoute{}
	for _, rt := range routes {
		if targets.RouteDstName(rt.Dst) != q.Name {
			continue
		}
		r := ipRoute{Dst: q.Name, Protocol: targets.RouteProtocolName(int(rt.Protocol))}
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
func (o *observer) linkName(h *netlink.Handle, index int) (string, error) {
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
