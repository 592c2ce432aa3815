package targets

import (
	"strings"
	"testing"
)

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
