package targets_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// netPass is one reconcile pass over rs: it plans (one round trip),
// checks each resource's action, applies the changes and returns them.
func netPass(t *testing.T, n netTarget, ds map[string]targets.Driver,
	rs []config.Resource, want ...targets.Action) []targets.Change {
	t.Helper()
	ctx, tr := n.ctx, n.tr
	trips := n.ssh.RoundTrips()
	changes, err := targets.PlanHost(ctx, tr, ds, rs)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.ssh.RoundTrips() - trips; got != n.planTrips() {
		t.Fatalf("planning %d resources took %d SSH round trips, want %d", len(rs), got, n.planTrips())
	}
	if len(changes) != len(rs) {
		t.Fatalf("%d changes for %d resources", len(changes), len(rs))
	}
	trips = n.ssh.RoundTrips()
	for i, c := range changes {
		if c.Action != want[i] {
			t.Fatalf("%s: %s, want %s\n%s", c.ID, c.Action, want[i], c.Diff)
		}
		if c.Action == targets.NoChange {
			continue
		}
		if err := ds[c.Kind].Apply(ctx, tr, rs[i], c.Before); err != nil {
			t.Fatalf("apply %s: %v", c.ID, err)
		}
	}
	n.noScripts(t, "applying", trips)
	return changes
}

// restoreAll puts back the snapshots of a pass in reverse order.
func restoreAll(t *testing.T, n netTarget, ds map[string]targets.Driver,
	rs []config.Resource, changes []targets.Change) {
	t.Helper()
	trips := n.ssh.RoundTrips()
	defer n.noScripts(t, "restoring", trips)
	for i := len(changes) - 1; i >= 0; i-- {
		if changes[i].Action == targets.NoChange {
			continue
		}
		if err := ds[changes[i].Kind].Restore(n.ctx, n.tr, rs[i], changes[i].Before); err != nil {
			t.Fatalf("restore %s: %v", changes[i].ID, err)
		}
	}
}

// ipv4Addrs is the IPv4 addresses of dl0 as `ip -j addr` shows them, each
// with every field ip prints but the lifetimes, sorted.
func ipv4Addrs(t *testing.T, h *hosts.Host) string {
	t.Helper()
	var links []struct {
		AddrInfo []map[string]any `json:"addr_info"`
	}
	out := h.MustExec(t, "ip -4 -j addr show dev dl0")
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j addr: %v\n%s", err, out)
	}
	var addrs []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			delete(a, "valid_life_time")
			delete(a, "preferred_life_time")
			b, _ := json.Marshal(a)
			addrs = append(addrs, string(b))
		}
	}
	sort.Strings(addrs)
	return strings.Join(addrs, "\n")
}

// TestAddressOverSSH converges addresses on a real host: one created, one
// whose prefix length changes, one removed; a second pass is a no-op;
// changes behind driftless's back are found and corrected; restoring puts
// back exactly the addresses there were.
func TestAddressOverSSH(t *testing.T) { testAddress(t, netHost(t, "addr")) }

func testAddress(t *testing.T, n netTarget) {
	h := n.h
	h.MustExec(t, "ip addr add 10.99.1.1/24 dev dl0 && ip addr add 10.99.3.3/24 dev dl0")
	before := ipv4Addrs(t, h)
	ds := netDrivers(5 * time.Second)
	rs := []config.Resource{
		{Kind: "address", Name: "10.99.2.5/24", Spec: &targets.AddressSpec{Interface: "dl0"}},
		{Kind: "address", Name: "10.99.1.1/16", Spec: &targets.AddressSpec{Interface: "dl0"}},
		{Kind: "address", Name: "10.99.3.3/24", Spec: &targets.AddressSpec{Interface: "dl0", State: config.Absent}},
	}
	none := targets.NoChange
	first := netPass(t, n, ds, rs, targets.Create, targets.Update, targets.Delete)
	if d := first[1].Diff; d != "address: 10.99.1.1/24 -> 10.99.1.1/16 on dl0" {
		t.Fatalf("diff of a prefix change: %q", d)
	}
	netPass(t, n, ds, rs, none, none, none)
	got := h.MustExec(t, "ip -4 -o addr show dev dl0 | awk '{print $4}' | sort")
	if got != "10.99.1.1/16\n10.99.2.5/24\n" {
		t.Fatalf("addresses after the first pass:\n%s", got)
	}
	if left := armedJobs(t, h); left != "" {
		t.Fatalf("confirmed changes left reverts armed:\n%s", left)
	}

	// Behind driftless's back.
	h.MustExec(t, "ip addr del 10.99.2.5/24 dev dl0 && ip addr del 10.99.1.1/16 dev dl0 && ip addr add 10.99.1.1/28 dev dl0 && ip addr add 10.99.3.3/32 dev dl0")
	netPass(t, n, ds, rs, targets.Create, targets.Update, targets.Delete)
	netPass(t, n, ds, rs, none, none, none)

	restoreAll(t, n, ds, rs, first)
	if after := ipv4Addrs(t, h); after != before {
		t.Fatalf("restore: addresses\n%s\nwant\n%s", after, before)
	}
}

// TestAddressErrors checks that bad input and a missing interface are
// clear errors, and that a sandbox root is refused.
func TestAddressErrors(t *testing.T) {
	d := &targets.AddressDriver{}
	ctx := context.Background()
	sandbox := targets.NewLocal(t.TempDir())
	for _, tc := range []struct {
		name string
		r    config.Resource
		want string
	}{
		{"not a cidr", config.Resource{Kind: "address", Name: "10.0.0.5", Spec: &targets.AddressSpec{Interface: "eth0"}}, "not an address in CIDR form"},
		{"bad interface", config.Resource{Kind: "address", Name: "10.0.0.5/24", Spec: &targets.AddressSpec{Interface: "eth0; reboot"}}, "not an interface name"},
		{"sandbox", config.Resource{Kind: "address", Name: "10.0.0.5/24", Spec: &targets.AddressSpec{Interface: "eth0"}}, "need a real host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Apply(ctx, sandbox, tc.r, targets.State{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			states, err := targets.Observe(ctx, sandbox, targets.Drivers(), []config.Resource{tc.r})
			if err == nil || !strings.Contains(err.Error(), tc.want) || len(states) != 0 {
				t.Fatalf("observe gave %v, %v, want no state and %q", states, err, tc.want)
			}
		})
	}
}

// FuzzAddressParse feeds arbitrary `ip -j addr` output to the parser: it
// fails cleanly or finds only the resource's own IP.
func FuzzAddressParse(f *testing.F) {
	f.Add([]byte(`[{"ifname":"dl0","addr_info":[{"family":"inet","local":"10.99.1.1","prefixlen":24}]}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"addr_info":[{"local":"10.99.1.1","prefixlen":-3}]}]`))
	d := &targets.AddressDriver{}
	r := config.Resource{Kind: "address", Name: "10.99.1.1/16", Spec: &targets.AddressSpec{Interface: "dl0"}}
	f.Fuzz(func(t *testing.T, out []byte) {
		st, err := d.Parse(r, out)
		if err != nil || !st.Present {
			return
		}
		if !strings.HasPrefix(st.Fields["address"], "10.99.1.1/") {
			t.Fatalf("found %q for 10.99.1.1", st.Fields["address"])
		}
		_ = d.Diff(r, st)
	})
}
