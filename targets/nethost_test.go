package targets_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// netTarget is a host the network drivers' tests run on, reached through
// the driftless agent over SSH: a kind-1 host, or a kind-2 host booting
// its own systemd.
type netTarget struct {
	lab *hosts.Lab
	h   *hosts.Host
	// ssh is the host's SSH connection, and tr what the drivers are given:
	// ssh itself, or the agent's transport over it.
	ssh *ssh.Transport
	tr  targets.Transport
	ctx context.Context
	// agent is the host's agent (vethTarget's callers always set one).
	agent *agent.Remote
}

// netHost starts a kind-1 host with a veth pair dl0/dl1 inside its network
// namespace (so that address and route tests never touch the interface
// SSH runs over) and reaches it through the agent over real SSH.
func netHost(t *testing.T, name string) netTarget {
	t.Helper()
	needNft(t)
	lab := hosts.NewLab(t, hosts.Options{})
	return vethTarget(t, lab, lab.Kind1(name), &agent.Deployer{Own: agentbin.Build(t)})
}

// agentNetHost starts a kind-2 host of lab with the veth pair dl0/dl1 and
// reaches it through the agent d deploys there.
func agentNetHost(t *testing.T, lab *hosts.Lab, d *agent.Deployer, name string) netTarget {
	t.Helper()
	return vethTarget(t, lab, lab.Kind2(name), d)
}

func needNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		need.Missing(t, "nftables is not installed (test/install-deps.sh installs it)")
	}
}

// vethTarget dials h, through an agent when d is set, and adds dl0/dl1.
func vethTarget(t *testing.T, lab *hosts.Lab, h *hosts.Host, d *agent.Deployer) netTarget {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	tr := dialHost(t, ctx, lab, h)
	t.Cleanup(func() { tr.Close() })
	n := netTarget{lab: lab, h: h, ssh: tr, tr: tr, ctx: ctx}
	if d != nil {
		n.agent = agent.NewRemote(d)
		t.Cleanup(func() { n.agent.Close() })
		n.tr = &agent.Transport{Starter: tr, Agent: n.agent}
	}
	h.MustExec(t, "ip link add dl0 type veth peer name dl1 && ip link set dl0 up && ip link set dl1 up")
	if n.agent != nil {
		// Started (and copied) before the test counts SSH round trips.
		if _, err := n.tr.(targets.NativeObserver).ObserveNative(ctx, []targets.Query{{Kind: "address", Name: "dl0"}}); err != nil {
			t.Fatalf("start the agent on %s: %v", h.Name, err)
		}
	}
	return n
}

// cutOff is the target's transport whose Redial goes to a port where
// nothing listens inside the lab, as if the change had cut the host off.
func (n netTarget) cutOff() targets.Transport {
	c := cutOffTransport{n.ssh, sshConfig(n.lab, n.h)}
	if n.agent != nil {
		return &agent.Transport{Starter: c, Agent: n.agent}
	}
	return c
}

// planTrips is how many SSH round trips planning takes: none through the
// agent (every netTarget has one; the 1 without it is left from the
// deleted shell path, where Observe now fails).
func (n netTarget) planTrips() int64 {
	if n.agent != nil {
		return 0
	}
	return 1
}

// reachableAgain checks, after a cut-off change was reverted by the host,
// that a new SSH connection works and that the test's own transport
// observes r again (through the agent: started again when the change cut
// its session).
func reachableAgain(t *testing.T, n netTarget, r config.Resource) {
	t.Helper()
	again := dialHost(t, n.ctx, n.lab, n.h)
	defer again.Close()
	if res, err := again.Run(n.ctx, "echo ok", nil); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("SSH after the revert: %q, %v", res.Stdout, err)
	}
	if _, err := targets.Observe(n.ctx, n.tr, targets.Drivers(), []config.Resource{r}); err != nil {
		t.Fatalf("observe %s after the revert: %v", r.ID(), err)
	}
	if n.agent != nil {
		t.Logf("agent started %d times", n.agent.Starts())
	}
}

// noScripts fails when, through the agent, what was done since the SSH
// round-trip count trips ran a script over SSH: the agent applies and
// restores natively and arms the reverts, and the confirmations take new
// connections.
func (n netTarget) noScripts(t *testing.T, what string, trips int64) {
	t.Helper()
	if got := n.ssh.RoundTrips() - trips; n.agent != nil && got != 0 {
		t.Fatalf("%s through the agent ran %d scripts over SSH, want none", what, got)
	}
}

func sshConfig(lab *hosts.Lab, h *hosts.Host) ssh.Config {
	return ssh.Config{Address: h.Address, KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Timeout: time.Minute}
}

func dialHost(t *testing.T, ctx context.Context, lab *hosts.Lab, h *hosts.Host) *ssh.Transport {
	t.Helper()
	tr, err := ssh.Dial(ctx, sshConfig(lab, h))
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	return tr
}

// cutOffTransport is the real SSH transport of a host whose Redial goes to
// a port where nothing listens inside the lab, as if the change had cut
// the host off.
type cutOffTransport struct {
	*ssh.Transport
	cfg ssh.Config
}

func (c cutOffTransport) Redial(ctx context.Context) (targets.Transport, error) {
	cfg := c.cfg
	cfg.Port = 2
	return ssh.Dial(ctx, cfg)
}

// TestNetworkThroughAgent runs the network drivers' host tests and the
// commit-confirmed ones on kind-2 hosts (systemd as PID 1 in their own
// network namespace) through the driftless agent: observed by the agent,
// applied and restored by it, commit-confirmed around it, with the cut-off
// cases where the host puts itself back.
func TestNetworkThroughAgent(t *testing.T) {
	needNft(t)
	d := &agent.Deployer{Own: agentbin.Build(t)}
	lab := hosts.NewLab(t, hosts.Options{})
	for _, c := range []struct {
		name string
		run  func(*testing.T, netTarget)
	}{
		{"address", testAddress},
		{"route", testRoute},
		{"route cut off", testRouteCutOff},
		{"firewall", testFirewall},
		{"firewall prior table", testFirewallPriorTable},
		{"firewall cut off", testFirewallCutOff},
		{"apply confirmed", testApplyConfirmed},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, agentNetHost(t, lab, d, "ag-"+strings.ReplaceAll(c.name, " ", "")))
		})
	}
}

// BenchmarkNetworkApply applies N addresses, N routes and a firewall
// ruleset (one resource of 2N rules) on one kind-2 host and restores them,
// each iteration from the same snapshots:
//
//   - agent: the drivers through the agent (natively, each change
//     commit-confirmed: the revert armed through the agent, a new SSH
//     connection to confirm);
//   - agent-steps: the same native applies and restores as two agent
//     calls, without the confirmation around each;
//   - floor: netlink calls from this process into the host's network
//     namespace, and one nft -f run there for the ruleset.
//
// Set DRIFTLESS_NET_N for N (default 10).
func BenchmarkNetworkApply(b *testing.B) {
	if _, err := exec.LookPath("nft"); err != nil {
		need.Missing(b, "nftables is not installed (test/install-deps.sh installs it)")
	}
	n := 10
	if v, err := strconv.Atoi(os.Getenv("DRIFTLESS_NET_N")); err == nil && v > 0 {
		n = v
	}
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind2("netbench")
	ctx := context.Background()
	tr := srvDial(b, lab, h)
	rem := agent.NewRemote(&agent.Deployer{Own: agentbin.Build(b)})
	b.Cleanup(func() { rem.Close() })
	at := &agent.Transport{Starter: tr, Agent: rem}
	h.MustExec(b, "ip link add dl0 type veth peer name dl1 && ip link set dl0 up && ip link set dl1 up && ip addr add 10.99.0.1/16 dev dl0")
	var rs []config.Resource
	var allow []string
	for i := range n {
		rs = append(rs, config.Resource{Kind: "address", Name: fmt.Sprintf("10.98.%d.1/24", i), Spec: &targets.AddressSpec{Interface: "dl0"}})
		dst := fmt.Sprintf("10.%d.0.0/16", 100+i)
		rs = append(rs, config.Resource{Kind: "route", Name: dst, Spec: &targets.RouteSpec{To: dst, Via: "10.99.0.2"}})
		allow = append(allow, fmt.Sprintf("tcp/%d", 9000+i), fmt.Sprintf("udp/%d", 9000+i))
	}
	rs = append(rs, config.Resource{Kind: "firewall", Name: "bench", Spec: &targets.FirewallSpec{Allow: allow}})
	ds := targets.WithConfirmTimeout(targets.Drivers(), 30*time.Second)
	changes, err := targets.PlanHost(ctx, at, ds, rs)
	if err != nil {
		b.Fatal(err)
	}
	before := h.MustExec(b, "ip -j addr show dev dl0; ip -j route; nft list ruleset")
	check := func(b *testing.B) {
		if now := h.MustExec(b, "ip -j addr show dev dl0; ip -j route; nft list ruleset"); now != before {
			b.Fatalf("the host was not put back:\n%s\nwant\n%s", now, before)
		}
	}
	drivers := func(t targets.Transport) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				for i, r := range rs {
					if err := ds[r.Kind].Apply(ctx, t, r, changes[i].Before); err != nil {
						b.Fatal(err)
					}
				}
				for i := len(rs) - 1; i >= 0; i-- {
					if err := ds[rs[i].Kind].Restore(ctx, t, rs[i], changes[i].Before); err != nil {
						b.Fatal(err)
					}
				}
			}
			check(b)
		}
	}
	b.Run("agent", drivers(at))
	b.Run("agent-steps", func(b *testing.B) {
		var apply, restore []targets.Step
		for i, r := range rs {
			apply = append(apply, targets.Step{Op: targets.StepApply, Resource: r, State: changes[i].Before})
			restore = append([]targets.Step{{Op: targets.StepRestore, Resource: r, State: changes[i].Before}}, restore...)
		}
		for b.Loop() {
			for _, steps := range [][]targets.Step{apply, restore} {
				if _, err := at.ApplyNative(ctx, steps); err != nil {
					b.Fatal(err)
				}
			}
		}
		check(b)
	})
	b.Run("floor", func(b *testing.B) {
		ns, err := netns.GetFromPath("/run/netns/" + h.Netns)
		if err != nil {
			b.Fatal(err)
		}
		defer ns.Close()
		nl, err := netlink.NewHandleAt(ns)
		if err != nil {
			b.Fatal(err)
		}
		defer nl.Close()
		link, err := nl.LinkByName("dl0")
		if err != nil {
			b.Fatal(err)
		}
		var addrs []*netlink.Addr
		var routes []*netlink.Route
		for i := range n {
			a, _ := netlink.ParseAddr(fmt.Sprintf("10.98.%d.1/24", i))
			a.Broadcast = net.IPv4zero
			addrs = append(addrs, a)
			_, dst, _ := net.ParseCIDR(fmt.Sprintf("10.%d.0.0/16", 100+i))
			routes = append(routes, &netlink.Route{Dst: dst, Gw: net.ParseIP("10.99.0.2").To4()})
		}
		ruleset := "table inet driftless {}\ndelete table inet driftless\ntable inet driftless {\nchain fw_bench {\n"
		for i := range n {
			ruleset += fmt.Sprintf("tcp dport %d accept\nudp dport %d accept\n", 9000+i, 9000+i)
		}
		ruleset += "}\nchain input { type filter hook input priority 0; policy accept; ct state established,related accept; iif \"lo\" accept; jump fw_bench comment \"policy=accept\"; }\n}\n"
		nft := func(b *testing.B, input string) {
			cmd := exec.Command("ip", "netns", "exec", h.Netns, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(input)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("nft: %v: %s", err, out)
			}
		}
		for b.Loop() {
			for i := range n {
				if err := nl.AddrReplace(link, addrs[i]); err != nil {
					b.Fatal(err)
				}
				if err := nl.RouteReplace(routes[i]); err != nil {
					b.Fatal(err)
				}
			}
			nft(b, ruleset)
			nft(b, "table inet driftless {}\ndelete table inet driftless\n")
			for i := n - 1; i >= 0; i-- {
				if err := nl.RouteDel(routes[i]); err != nil {
					b.Fatal(err)
				}
				if err := nl.AddrDel(link, addrs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		check(b)
	})
}
