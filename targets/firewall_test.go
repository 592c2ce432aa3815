package targets_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// tcpOpen reports whether a connection to the host's port opens: a real
// check that the rules drop or accept packets, not only that they are listed.
func tcpOpen(h *hosts.Host, port string) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, port), 700*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestFirewallOverSSH converges two firewall resources sharing the one
// driftless table on a real host, a drop policy among them; a second pass
// is a no-op; rules added, removed and a policy changed behind driftless's
// back are found, shown and corrected; restoring puts back exactly the
// ruleset there was (here: a table of another owner, and no driftless
// table at all).
func TestFirewallOverSSH(t *testing.T) { testFirewall(t, netHost(t, "fw")) }

func testFirewall(t *testing.T, n netTarget) {
	lab, h := n.lab, n.h
	// A table that is not driftless's, which must survive every pass.
	h.MustExec(t, "nft add table ip other && nft add chain ip other c && nft add rule ip other c tcp dport 1234 counter")
	// Listeners on 8080 and 9200 (perl is part of every Debian base) show
	// what the rules really let through.
	for _, port := range []string{"8080", "9200"} {
		h.MustExec(t, "setsid nohup perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => "+port+
			", Listen => 8, ReuseAddr => 1) or die; while ($c = $s->accept) { close $c }' >/dev/null 2>&1 </dev/null &")
	}
	waitFor(t, 5*time.Second, func() bool { return tcpOpen(h, "8080") && tcpOpen(h, "9200") })
	before := h.MustExec(t, "nft list ruleset")

	ds := netDrivers(5 * time.Second)
	lan := lab.BridgeIP + "/24"
	rs := []config.Resource{
		{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{Allow: []string{"tcp/8080", "icmp"}}},
		{Kind: "firewall", Name: "ops", Spec: &targets.FirewallSpec{
			Allow: []string{"tcp/22", "tcp/9000-9100"}, Deny: []string{"udp/53"}, From: lan, Policy: "drop"}},
	}
	none := targets.NoChange
	first := netPass(t, n, ds, rs, targets.Create, targets.Create)
	if d := first[0].Diff; !strings.Contains(d, "table inet driftless: (absent) -> created") || !strings.Contains(d, "+ allow tcp/8080") {
		t.Fatalf("diff of a new firewall: %q", d)
	}
	netPass(t, n, ds, rs, none, none)
	table := h.MustExec(t, "nft list table inet driftless")
	for _, want := range []string{"policy drop;", "ct state established,related accept", `iif "lo" accept`,
		`jump fw_ops comment "policy=drop"`, `jump fw_web comment "policy=accept"`,
		"ip saddr 10.77.", "udp dport 53 drop", "tcp dport 9000-9100 accept", "tcp dport 8080 accept", "meta l4proto "} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(h.MustExec(t, "nft list table ip other"), "tcp dport 1234") {
		t.Fatal("another owner's table was touched")
	}
	if !tcpOpen(h, "8080") || tcpOpen(h, "9200") {
		t.Fatalf("8080 open: %v (want true), 9200 open: %v (want false)", tcpOpen(h, "8080"), tcpOpen(h, "9200"))
	}
	if left := armedJobs(t, h); left != "" {
		t.Fatalf("confirmed changes left reverts armed:\n%s", left)
	}

	// Behind driftless's back: a rule added to one chain, one deleted from
	// the other, and the policy opened.
	h.MustExec(t, `nft add rule inet driftless fw_web tcp dport 9200 accept &&
		h=$(nft -a list chain inet driftless fw_ops | sed -n 's/.*udp dport 53 drop # handle \([0-9]*\)/\1/p') &&
		nft delete rule inet driftless fw_ops handle "$h" &&
		nft add chain inet driftless input '{ type filter hook input priority filter; policy accept; }'`)
	c := netPass(t, n, ds, rs, targets.Update, targets.Update)
	if d := c[0].Diff; !strings.Contains(d, "- allow tcp/9200") || !strings.Contains(d, "policy: accept -> drop") {
		t.Fatalf("diff of web after drift: %q", d)
	}
	if d := c[1].Diff; !strings.Contains(d, "+ deny udp/53 from "+lab.BridgeIP[:strings.LastIndex(lab.BridgeIP, ".")]+".0/24") {
		t.Fatalf("diff of ops after drift: %q", d)
	}
	netPass(t, n, ds, rs, none, none)
	if got := h.MustExec(t, "nft list table inet driftless"); got != table {
		t.Fatalf("table after healing:\n%s\nwant\n%s", got, table)
	}

	// A rule nobody declared, in a form driftless never writes, is drift too.
	h.MustExec(t, "nft add rule inet driftless fw_web ip daddr 10.1.1.1 counter accept")
	c = netPass(t, n, ds, rs, targets.Update, none)
	if !strings.Contains(c[0].Diff, "- unrecognised: ") {
		t.Fatalf("a hand-written rule is not shown: %q", c[0].Diff)
	}

	restoreAll(t, n, ds, rs, first)
	if after := h.MustExec(t, "nft list ruleset"); after != before {
		t.Fatalf("restore: ruleset\n%s\nwant\n%s", after, before)
	}
}

// TestFirewallRestoresPriorTable checks that a restore puts back a prior
// driftless table exactly, rules the driver would not write included.
func TestFirewallRestoresPriorTable(t *testing.T) {
	testFirewallPriorTable(t, netHost(t, "fwprior"))
}

func testFirewallPriorTable(t *testing.T, n netTarget) {
	h := n.h
	h.MustExec(t, `nft -f - <<'EOF'
table inet driftless {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 7000 counter accept
	}
}
EOF`)
	before := h.MustExec(t, "nft -j list ruleset | sed 's/\"handle\": [0-9]*//g'")
	ds := netDrivers(5 * time.Second)
	rs := []config.Resource{{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{Allow: []string{"tcp/22", "tcp/8080"}, Policy: "drop"}}}
	first := netPass(t, n, ds, rs, targets.Create)
	if !strings.Contains(first[0].Diff, "input chain: changed by hand -> rewritten") {
		t.Fatalf("diff over a hand-made table: %q", first[0].Diff)
	}
	netPass(t, n, ds, rs, targets.NoChange)
	restoreAll(t, n, ds, rs, first)
	if after := h.MustExec(t, "nft -j list ruleset | sed 's/\"handle\": [0-9]*//g'"); after != before {
		t.Fatalf("restore: ruleset\n%s\nwant\n%s", after, before)
	}
}

// TestFirewallDiff checks the plan of a firewall resource against observed
// states: the input policy is drop when any resource declares drop, and
// rule changes are listed as removed and added.
func TestFirewallDiff(t *testing.T) {
	d := &targets.FirewallDriver{}
	web := config.Resource{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{Allow: []string{"tcp/8080"}}}
	tests := []struct {
		name   string
		fields map[string]string
		action targets.Action
		diff   string
	}{
		{"absent table", map[string]string{"table": "absent"}, targets.Create,
			"table inet driftless: (absent) -> created\npolicy: (none) -> accept\n+ allow tcp/8080"},
		{"converged", map[string]string{"table": "present", "base": "ok", "policy": "accept", "own_policy": "accept", "rules": "allow tcp/8080"},
			targets.NoChange, ""},
		{"another resource drops", map[string]string{"table": "present", "base": "ok", "policy": "drop", "own_policy": "accept",
			"others_drop": "true", "rules": "allow tcp/8080"}, targets.NoChange, ""},
		{"drop lost", map[string]string{"table": "present", "base": "ok", "policy": "accept", "own_policy": "accept",
			"others_drop": "true", "rules": "allow tcp/8080"}, targets.Update, "policy: accept -> drop"},
		{"rules changed", map[string]string{"table": "present", "base": "ok", "policy": "accept", "own_policy": "accept",
			"rules": "allow tcp/22\nallow tcp/8080"}, targets.Update, "- allow tcp/22"},
		{"jump removed", map[string]string{"table": "present", "base": "ok", "policy": "accept", "rules": "allow tcp/8080"},
			targets.Create, "firewall:web: (absent) -> added to table inet driftless"},
		{"input chain edited", map[string]string{"table": "present", "base": "differs", "policy": "accept", "own_policy": "accept",
			"rules": "allow tcp/8080"}, targets.Update, "input chain: changed by hand -> rewritten"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := targets.State{Present: tc.fields["own_policy"] != "", Fields: tc.fields}
			c := d.Diff(web, st)
			if c.Action != tc.action || c.Diff != tc.diff {
				t.Fatalf("%s %q, want %s %q", c.Action, c.Diff, tc.action, tc.diff)
			}
		})
	}
}
