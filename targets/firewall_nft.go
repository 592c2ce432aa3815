package targets

import (
	"encoding/json"
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
		return fwRule{}, fmt.Errorf("rule %q is not one such as tcp/8080, udp/53, tcp/8000-8100 or icmp", rule)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	l, err1 := strconv.Atoi(lo)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.Atoi(hi)
	}
	if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return fwRule{}, fmt.Errorf("rule %q has a port outside 1-65535 or a reversed range", rule)
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

// nftJSON is the part of `nft -j list table` output the driver reads.
type nftJSON struct {
	Nftables []struct {
		Chain *struct {
			Name   string `json:"name"`
			Type   string `json:"type"`
			Hook   string `json:"hook"`
			Prio   *int   `json:"prio"`
			Policy string `json:"policy"`
		} `json:"chain"`
		Rule *struct {
			Chain   string            `json:"chain"`
			Comment string            `json:"comment"`
			Expr    []json.RawMessage `json:"expr"`
		} `json:"rule"`
	} `json:"nftables"`
}

// parseNftTable reads `nft -j list table inet driftless`.
func parseNftTable(out []byte) (fwTable, error) {
	var doc nftJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		return fwTable{}, fmt.Errorf("parse nft JSON: %w", err)
	}
	t := fwTable{Present: true, Chains: map[string][]string{}}
	inputOK := false
	var input []string
	for _, o := range doc.Nftables {
		switch {
		case o.Chain != nil && o.Chain.Name == "input":
			inputOK = o.Chain.Type == "filter" && o.Chain.Hook == "input" && o.Chain.Prio != nil && *o.Chain.Prio == 0
			t.Policy = o.Chain.Policy
		case o.Chain != nil:
			t.Chains[o.Chain.Name] = []string{}
		case o.Rule != nil && o.Rule.Chain == "input":
			shown := showExpr(o.Rule.Expr)
			if target, ok := strings.CutPrefix(shown, "jump "); ok {
				pol := strings.TrimPrefix(o.Rule.Comment, "policy=")
				t.Jumps = append(t.Jumps, fwJump{Chain: target, Policy: pol})
			}
			input = append(input, shown)
		case o.Rule != nil:
			t.Chains[o.Rule.Chain] = append(t.Chains[o.Rule.Chain], showExpr(o.Rule.Expr))
		}
	}
	t.Base = inputOK && len(input) >= 2 && input[0] == "established" && input[1] == "loopback" &&
		len(input) == 2+len(t.Jumps) && sort.SliceIsSorted(t.Jumps, func(i, j int) bool { return t.Jumps[i].Chain < t.Jumps[j].Chain })
	return t, nil
}

// nftMatch is a match expression of nft's JSON.
type nftMatch struct {
	Op   string `json:"op"`
	Left struct {
		Payload *struct{ Protocol, Field string } `json:"payload"`
		Meta    *struct{ Key string }             `json:"meta"`
		Ct      *struct{ Key string }             `json:"ct"`
	} `json:"left"`
	Right json.RawMessage `json:"right"`
}

// showExpr writes a rule's expression list in the String form of fwRule,
// or as "established", "loopback", "jump CHAIN" for the input chain's own
// rules. Anything else is shown as "unrecognised: <json>", so that a rule
// added by hand is a visible difference instead of being ignored.
func showExpr(exprs []json.RawMessage) string {
	var r fwRule
	verdict, special := "", ""
	for _, raw := range exprs {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil || len(e) != 1 {
			return unrecognised(exprs)
		}
		switch {
		case e["accept"] != nil:
			verdict = "accept"
		case e["drop"] != nil:
			verdict = "drop"
		case e["jump"] != nil:
			var j struct{ Target string }
			if json.Unmarshal(e["jump"], &j) != nil {
				return unrecognised(exprs)
			}
			special = "jump " + j.Target
		case e["match"] != nil:
			var m nftMatch
			if json.Unmarshal(e["match"], &m) != nil || !readMatch(m, &r, &special) {
				return unrecognised(exprs)
			}
		default:
			return unrecognised(exprs)
		}
	}
	switch {
	case special != "" && strings.HasPrefix(special, "jump ") && verdict == "" && r.Proto == "" && r.From == "":
		return special
	case special != "" && verdict == "accept" && r.Proto == "" && r.From == "":
		return special
	case special == "" && r.Proto != "" && verdict != "":
		r.Allow = verdict == "accept"
		return r.String()
	}
	return unrecognised(exprs)
}

// readMatch folds one match into the rule being read; false when it is not
// one driftless writes.
func readMatch(m nftMatch, r *fwRule, special *string) bool {
	var s string
	_ = json.Unmarshal(m.Right, &s)
	// Hosts without /etc/protocols (a minimal base has no netbase) show
	// protocols by number.
	var num int
	if json.Unmarshal(m.Right, &num) == nil {
		s = map[int]string{1: "icmp", 58: "ipv6-icmp"}[num]
	}
	switch {
	case m.Left.Ct != nil && m.Left.Ct.Key == "state" && m.Op == "in":
		var states []string
		if json.Unmarshal(m.Right, &states) != nil || strings.Join(states, ",") != "established,related" {
			return false
		}
		*special = "established"
	case m.Op != "==":
		return false
	case m.Left.Meta != nil && m.Left.Meta.Key == "iif" && s == "lo":
		*special = "loopback"
	case m.Left.Meta != nil && m.Left.Meta.Key == "l4proto" && (s == "icmp" || s == "ipv6-icmp"):
		r.Proto = map[string]string{"icmp": "icmp", "ipv6-icmp": "icmpv6"}[s]
	case m.Left.Payload != nil && (m.Left.Payload.Protocol == "ip" || m.Left.Payload.Protocol == "ip6") && m.Left.Payload.Field == "saddr":
		var p struct {
			Prefix *struct {
				Addr string
				Len  int
			}
		}
		if s != "" {
			r.From = s
		} else if json.Unmarshal(m.Right, &p) == nil && p.Prefix != nil {
			r.From = p.Prefix.Addr + "/" + strconv.Itoa(p.Prefix.Len)
		} else {
			return false
		}
	case m.Left.Payload != nil && (m.Left.Payload.Protocol == "tcp" || m.Left.Payload.Protocol == "udp") && m.Left.Payload.Field == "dport":
		r.Proto = m.Left.Payload.Protocol
		var port int
		var rng struct{ Range []int }
		if json.Unmarshal(m.Right, &port) == nil {
			r.Ports = strconv.Itoa(port)
		} else if json.Unmarshal(m.Right, &rng) == nil && len(rng.Range) == 2 {
			r.Ports = strconv.Itoa(rng.Range[0]) + "-" + strconv.Itoa(rng.Range[1])
		} else {
			return false
		}
	default:
		return false
	}
	return true
}

func unrecognised(exprs []json.RawMessage) string {
	b, _ := json.Marshal(exprs)
	return "unrecognised: " + string(b)
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
