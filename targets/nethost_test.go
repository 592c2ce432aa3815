package targets_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// netTarget is a host the network drivers' tests run on, and how they
// reach it: over SSH alone (a kind-1 host, shell probes and scripts), or
// through the driftless agent over SSH (a kind-2 host booting its own
// systemd).
type netTarget struct {
	lab *hosts.Lab
	h   *hosts.Host
	// ssh is the host's SSH connection, and tr what the drivers are given:
	// ssh itself, or the agent's transport over it.
	ssh *ssh.Transport
	tr  targets.Transport
	ctx context.Context
	// agent is the host's agent, nil on the shell path.
	agent *agent.Remote
}

// netHost starts a kind-1 host with a veth pair dl0/dl1 inside its network
// namespace (so that address and route tests never touch the interface
// SSH runs over) and dials it over real SSH.
func netHost(t *testing.T, name string) netTarget {
	t.Helper()
	needNft(t)
	lab := hosts.NewLab(t, hosts.Options{})
	return vethTarget(t, lab, lab.Kind1(name), nil)
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

// planTrips is how many SSH round trips planning takes: one batched
// probe script on the shell path, none through the agent.
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
