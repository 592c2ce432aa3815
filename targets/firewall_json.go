package targets

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// This file reads the live table from `nft -j list table inet driftless`
// into the model of firewall_nft.go.

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
