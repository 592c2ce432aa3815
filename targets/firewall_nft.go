package targets

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// fwRule is one firewall rule in the form driftless writes it: a verdict,
// a protocol with an optional port or port range, an optional source.
type fwRule struct {
	Allow bool
	Proto string // tcp, udp, icmp, icmpv6
	Ports string // "8080", "8000-8100", "" for icmp
	From  string // canonical: "10.0.0.0/24", "10.1.2.3", "" for any
}

// String is the rule as diffs and states show it: "allow tcp/8080 from 10.0.0.0/24".
func (r fwRule) String() string {
	v := "deny"
	if r.Allow {
		v = "allow"
	}
	s := v + " " + r.Proto
	if r.Ports != "" {
		s += "/" + r.Ports
	}
	if r.From != "" {
		s += " from " + r.From
	}
	return s
}

// nft is the rule in nftables syntax.
func (r fwRule) nft() string {
	var parts []string
	if r.From != "" {
		fam := "ip"
		if strings.Contains(r.From, ":") {
			fam = "ip6"
		}
		parts = append(parts, fam+" saddr "+r.From)
	}
	switch r.Proto {
	case "icmp":
		parts = append(parts, "meta l4proto icmp")
	case "icmpv6":
		parts = append(parts, "meta l4proto ipv6-icmp")
	default:
		parts = append(parts, r.Proto+" dport "+r.Ports)
	}
	if r.Allow {
		parts = append(parts, "accept")
	} else {
		parts = append(parts, "drop")
	}
	return strings.Join(parts, " ")
}

// canonFrom writes a source address or prefix as nft prints it: the masked
// prefix, or the bare address for a single address.
func canonFrom(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("from %q is not an address or a CIDR prefix", s)
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

// parseFwRule reads a declared rule ("tcp/8080", "udp/53", "tcp/8000-8100",
// "icmp", "icmpv6") with its verdict and source.
func parseFwRule(allow bool, rule, from string) (fwRule, error) {
	f, err := canonFrom(from)
	if err != nil {
		return fwRule{}, err
	}
	r := fwRule{Allow: allow, From: f}
	proto, ports, hasPorts := strings.Cut(rule, "/")
	switch {
	case (proto == "icmp" || proto == "icmpv6") && !hasPorts:
		r.Proto = proto
		return r, nil
	case (proto == "tcp" || proto == "udp") && hasPorts:
		r.Proto = proto
	default:
		return fwRule{}, fmt.Errorf("%q is not a rule such as tcp/8080, udp/53, tcp/8000-8100 or icmp", rule)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	if strings.Trim(lo, "0123456789") != "" || strings.Trim(hi, "0123456789") != "" {
		return fwRule{}, fmt.Errorf("%q is not a rule such as tcp/8080, udp/53, tcp/8000-8100 or icmp", rule)
	}
	l, err1 := strconv.Atoi(lo)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.Atoi(hi)
	}
	if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return fwRule{}, fmt.Errorf("%q has a port outside 1-65535 or a reversed range", rule)
	}
	r.Ports = strconv.Itoa(l)
	if h != l {
		r.Ports += "-" + strconv.Itoa(h)
	}
	return r, nil
}

// parseShownRule reads a rule back from its String form, as states keep them.
func parseShownRule(s string) (fwRule, bool) {
	verdict, rest, _ := strings.Cut(s, " ")
	rule, from, _ := strings.Cut(rest, " from ")
	if verdict != "allow" && verdict != "deny" {
		return fwRule{}, false
	}
	r, err := parseFwRule(verdict == "allow", rule, from)
	return r, err == nil
}

// fwJump is a jump from the input chain to one resource's chain; its
// comment records the policy that resource declared.
type fwJump struct {
	Chain  string
	Policy string
}

// fwTable is the live `table inet driftless` as the driver understands it.
type fwTable struct {
	Present bool
	Policy  string
	// Base is true when the input chain is exactly as driftless writes it.
	Base   bool
	Jumps  []fwJump
	Chains map[string][]string
}

// render writes the whole table in nftables syntax, ready for `nft -f`
// after a "table inet driftless {}" / "delete table inet driftless" pair,
// so that the replacement is one transaction. Rules of a chain that are
// not ones driftless writes are left out: the table belongs to driftless.
func (t fwTable) render() string {
	var b strings.Builder
	b.WriteString("table inet driftless {\n\tchain input {\n\t\ttype filter hook input priority filter; policy " + t.Policy + ";\n")
	b.WriteString("\t\tct state established,related accept\n\t\tiif \"lo\" accept\n")
	for _, j := range t.Jumps {
		b.WriteString("\t\tjump " + j.Chain + " comment \"policy=" + j.Policy + "\"\n")
	}
	b.WriteString("\t}\n")
	for _, j := range t.Jumps {
		b.WriteString("\n\tchain " + j.Chain + " {\n")
		for _, shown := range t.Chains[j.Chain] {
			if r, ok := parseShownRule(shown); ok {
				b.WriteString("\t\t" + r.nft() + "\n")
			}
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// set puts one resource's chain into the table (keeping the other
// resources' chains), sorts the jumps and recomputes the input policy:
// drop when any resource declared drop.
func (t *fwTable) set(chain, policy string, rules []string) {
	if t.Chains == nil {
		t.Chains = map[string][]string{}
	}
	t.Chains[chain] = rules
	var jumps []fwJump
	for _, j := range t.Jumps {
		if _, ok := t.Chains[j.Chain]; ok && j.Chain != chain {
			jumps = append(jumps, j)
		}
	}
	jumps = append(jumps, fwJump{Chain: chain, Policy: policy})
	// Only chains and policies driftless itself would write are kept: a
	// name read from the live table is never written back into nft's input
	// unchecked.
	kept := jumps[:0]
	for _, j := range jumps {
		if fwName.MatchString(strings.TrimPrefix(j.Chain, "fw_")) && strings.HasPrefix(j.Chain, "fw_") {
			if j.Policy != "drop" {
				j.Policy = "accept"
			}
			kept = append(kept, j)
		}
	}
	jumps = kept
	sort.Slice(jumps, func(i, j int) bool { return jumps[i].Chain < jumps[j].Chain })
	t.Jumps, t.Policy = jumps, "accept"
	for _, j := range jumps {
		if j.Policy == "drop" {
			t.Policy = "drop"
		}
	}
	t.Present, t.Base = true, true
}
