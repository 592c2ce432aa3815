package targets

import (
	"regexp"
	"strings"
	"testing"
)

// jumpLine is a jump as render may write it.
var jumpLine = regexp.MustCompile(`^fw_[A-Za-z0-9_-]+ comment "policy=(accept|drop)"$`)

// nftSample is `nft -j list table inet driftless` of a table as the driver
// writes it, plus one rule it never writes.
const nftSample = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "driftless", "handle": 2}}, {"chain": {"family": "inet", "table": "driftless", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "driftless", "name": "fw_web", "handle": 2}}, {"rule": {"family": "inet", "table": "driftless", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "input", "handle": 5, "comment": "policy=drop", "expr": [{"jump": {"target": "fw_web"}}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "fd00::", "len": 64}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [8000, 8100]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": 58}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 11, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.1.2.3"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "driftless", "chain": "fw_web", "handle": 12, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}]}`

func TestParseNftTable(t *testing.T) {
	tb, err := parseNftTable([]byte(nftSample))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(tb.Chains["fw_web"], "\n")
	want := `allow tcp/8080 from 10.0.0.0/24
deny udp/53 from fd00::/64
allow tcp/8000-8100
allow icmp
allow icmpv6
allow tcp/22 from 10.1.2.3
unrecognised: [{"counter":{"packets":0,"bytes":0}},{"accept":null}]`
	if got != want {
		t.Fatalf("rules:\n%s\nwant\n%s", got, want)
	}
	if !tb.Base || tb.Policy != "drop" || len(tb.Jumps) != 1 || tb.Jumps[0] != (fwJump{"fw_web", "drop"}) {
		t.Fatalf("table: %+v", tb)
	}
	tb.set("fw_api", "accept", []string{"allow tcp/443"})
	text := tb.render()
	for _, line := range []string{"policy drop;", "jump fw_api comment \"policy=accept\"\n\t\tjump fw_web", "ip6 saddr fd00::/64 udp dport 53 drop",
		"meta l4proto icmp accept", "meta l4proto ipv6-icmp accept", "tcp dport 8000-8100 accept", "ip saddr 10.1.2.3 tcp dport 22 accept", "tcp dport 443 accept"} {
		if !strings.Contains(text, line) {
			t.Errorf("render lacks %q:\n%s", line, text)
		}
	}
	if strings.Contains(text, "counter") {
		t.Errorf("render kept a rule driftless does not write:\n%s", text)
	}
}

func TestParseFwRule(t *testing.T) {
	tests := []struct {
		allow      bool
		rule, from string
		want       string
		nft        string
		err        string
	}{
		{true, "tcp/8080", "", "allow tcp/8080", "tcp dport 8080 accept", ""},
		{false, "udp/53", "10.0.0.7/24", "deny udp/53 from 10.0.0.0/24", "ip saddr 10.0.0.0/24 udp dport 53 drop", ""},
		{true, "tcp/8000-8100", "10.1.2.3", "allow tcp/8000-8100 from 10.1.2.3", "ip saddr 10.1.2.3 tcp dport 8000-8100 accept", ""},
		{true, "tcp/22-22", "10.1.2.3/32", "allow tcp/22 from 10.1.2.3", "ip saddr 10.1.2.3 tcp dport 22 accept", ""},
		{true, "icmpv6", "fd00::1/64", "allow icmpv6 from fd00::/64", "ip6 saddr fd00::/64 meta l4proto ipv6-icmp accept", ""},
		{true, "icmp", "", "allow icmp", "meta l4proto icmp accept", ""},
		{true, "tcp/0", "", "", "", "port outside"},
		{true, "tcp/90-80", "", "", "", "reversed"},
		{true, "tcp/65536", "", "", "", "port outside"},
		{true, "sctp/9", "", "", "", "is not a rule such as"},
		{true, "icmp/8", "", "", "", "is not a rule such as"},
		{true, "tcp/", "", "", "", "port outside"},
		{true, "tcp/22", "10.0.0.0/40", "", "", "not an address"},
	}
	for _, tc := range tests {
		t.Run(tc.rule+" "+tc.from, func(t *testing.T) {
			r, err := parseFwRule(tc.allow, tc.rule, tc.from)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || r.String() != tc.want || r.nft() != tc.nft {
				t.Fatalf("got %q / %q, %v; want %q / %q", r.String(), r.nft(), err, tc.want, tc.nft)
			}
			back, ok := parseShownRule(r.String())
			if !ok || back != r {
				t.Fatalf("%q read back as %+v, %v", r.String(), back, ok)
			}
		})
	}
}

// FuzzParseFwRule checks that every rule accepted is shown in a form that
// reads back to the same rule, so that a state never changes meaning.
func FuzzParseFwRule(f *testing.F) {
	for _, s := range []string{"tcp/8080", "udp/1-65535", "icmp", "icmpv6", "tcp/08", "tcp/-1"} {
		f.Add(s, "10.0.0.0/24")
	}
	f.Fuzz(func(t *testing.T, rule, from string) {
		r, err := parseFwRule(true, rule, from)
		if err != nil {
			return
		}
		back, ok := parseShownRule(r.String())
		if !ok || back != r {
			t.Fatalf("%q from %q shown as %q, read back as %+v", rule, from, r.String(), back)
		}
	})
}

// FuzzParseNftTable feeds arbitrary nft output to the parser: it must fail
// cleanly or return a table whose render holds only rules driftless writes.
func FuzzParseNftTable(f *testing.F) {
	f.Add([]byte(nftSample))
	f.Add([]byte("absent\n"))
	f.Add([]byte(`{"nftables":[{"rule":{"chain":"input","expr":[{"jump":{"target":"x"}}]}}]}` + "\n" + fwTextMark + "\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		tb, _, err := parseFwProbe(out)
		if err != nil {
			return
		}
		if !tb.Present {
			return
		}
		tb.set("fw_z", "drop", nil)
		text := tb.render()
		if !strings.HasPrefix(text, "table inet driftless {") || strings.Contains(text, "unrecognised") {
			t.Fatalf("render:\n%s", text)
		}
		for _, line := range strings.Split(text, "\n") {
			if j, ok := strings.CutPrefix(strings.TrimSpace(line), "jump "); ok && !jumpLine.MatchString(j) {
				t.Fatalf("render wrote an unchecked jump %q:\n%s", line, text)
			}
		}
	})
}

// BenchmarkFirewallReadRender measures the driver's own work per firewall
// apply: parsing the live table's JSON, setting one chain, rendering.
func BenchmarkFirewallReadRender(b *testing.B) {
	for b.Loop() {
		tb, err := parseNftTable([]byte(nftSample))
		if err != nil {
			b.Fatal(err)
		}
		tb.set("fw_api", "accept", []string{"allow tcp/443"})
		_ = tb.render()
	}
}
