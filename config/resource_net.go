package config

import (
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkRoute validates a route: a destination, a gateway or device.
func (l *loader) checkRoute(d *decoder, r *rawResource, s *RouteSpec) {
	if s.To == "" {
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a route needs to (a destination in CIDR form, or default)")
	} else if _, err := netip.ParsePrefix(s.To); err != nil && s.To != "default" {
		d.errorf(d.at(r, "to"), "to: %q is not a destination in CIDR form such as 10.1.0.0/16, or default", s.To)
	}
	if s.Via == "" && s.Dev == "" && s.State != Absent {
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a route needs via or dev")
	}
	if _, err := netip.ParseAddr(s.Via); s.Via != "" && err != nil {
		d.errorf(d.at(r, "via"), "via: %q is not an IP address", s.Via)
	}
	if s.State != "" && !contains(states["route"], s.State) {
		d.errorf(d.at(r, "state"), "state: %q is not one of %s", s.State, strings.Join(states["route"], ", "))
	}
}

// checkFirewall validates firewall rules, their source and the policy.
func (l *loader) checkFirewall(d *decoder, r *rawResource, s *FirewallSpec) {
	if s.Name != "" && !fwNameRe.MatchString(s.Name) {
		d.errorf(d.at(r, "name"), "name: %q may hold only letters, digits, - and _", s.Name)
	}
	if len(s.Allow) == 0 && len(s.Deny) == 0 && s.Policy == "" {
		d.errorf(&yaml.Node{Line: r.res.Pos.Line, Column: r.res.Pos.Column}, "a firewall needs allow, deny or policy")
	}
	for _, key := range []string{"allow", "deny"} {
		rules := s.Allow
		if key == "deny" {
			rules = s.Deny
		}
		for _, rule := range rules {
			if msg := ruleProblem(rule); msg != "" {
				d.errorf(d.at(r, key), "%s: %q %s", key, rule, msg)
			}
		}
	}
	if s.From != "" {
		_, errP := netip.ParsePrefix(s.From)
		_, errA := netip.ParseAddr(s.From)
		if errP != nil && errA != nil {
			d.errorf(d.at(r, "from"), "from: %q is not an address or a CIDR prefix", s.From)
		}
	}
	if s.Policy != "" && s.Policy != "accept" && s.Policy != "drop" {
		d.errorf(d.at(r, "policy"), "policy: %q is not one of accept, drop", s.Policy)
	}
}

// ruleProblem checks a firewall rule: tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp, icmpv6.
func ruleProblem(rule string) string {
	m := ruleRe.FindStringSubmatch(rule)
	if m == nil {
		return "is not a rule such as tcp/8080, udp/53, tcp/8000-8100 or icmp"
	}
	if m[4] != "" {
		return ""
	}
	lo, hi := atoiPort(m[2]), atoiPort(m[2])
	if m[3] != "" {
		hi = atoiPort(m[3])
	}
	if lo < 1 || hi < 1 || lo > hi {
		return "has a port outside 1-65535 or a reversed range"
	}
	return ""
}

func atoiPort(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
		if n > 65535 {
			return -1
		}
	}
	return n
}
