package targets_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
)

// The helpers of the server-driver tests that run against real hosts. They
// live in the external test package because targets/ssh and test/hosts
// import targets.

// srvTransport is a lab host reached as the daemon reaches it: through
// the driftless agent over real SSH. RoundTrips counts the SSH round
// trips (the agent's requests take none).
type srvTransport struct {
	*agent.Transport
	ssh *ssh.Transport
}

func (s srvTransport) RoundTrips() int64 { return s.ssh.RoundTrips() }

// srvDial connects to a lab host as root over real SSH and puts the
// driftless agent (the binary agentbin builds) on it.
func srvDial(t testing.TB, lab *hosts.Lab, h *hosts.Host) srvTransport {
	t.Helper()
	cfg := sshConfig(lab, h)
	cfg.Timeout = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := ssh.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	rem := agent.NewRemote(&agent.Deployer{Own: agentbin.Build(t)})
	t.Cleanup(func() {
		rem.Close()
		tr.Close()
	})
	at := &agent.Transport{Starter: tr, Agent: rem}
	// Started (and copied) before the tests count SSH round trips.
	if _, err := at.ObserveNative(ctx, []targets.Query{{Kind: "directory", Path: "/"}}); err != nil {
		t.Fatalf("start the agent on %s: %v", h.Name, err)
	}
	return srvTransport{at, tr}
}

// srvHostObserve observes one resource through the real batched Observe.
func srvHostObserve(t *testing.T, tr targets.Transport, d targets.Driver, r config.Resource) targets.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	states, err := targets.Observe(ctx, tr, map[string]targets.Driver{d.Kind(): d}, []config.Resource{r})
	if err != nil {
		t.Fatalf("observe %s: %v", r.ID(), err)
	}
	return states[r.ID()]
}

// srvHostConverge runs one pass (observe, diff, apply when needed), checks
// the action it took, and that a second pass finds nothing left to do.
func srvHostConverge(t *testing.T, tr targets.Transport, d targets.Driver, r config.Resource, want targets.Action) targets.Change {
	t.Helper()
	st := srvHostObserve(t, tr, d, r)
	c := d.Diff(r, st)
	if c.Action != want {
		t.Fatalf("%s: action %s, want %s (diff %q, state %+v)", r.ID(), c.Action, want, c.Diff, st)
	}
	if c.Action == targets.NoChange {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.Apply(ctx, tr, r, st); err != nil {
		t.Fatalf("apply %s: %v", r.ID(), err)
	}
	if again := d.Diff(r, srvHostObserve(t, tr, d, r)); again.Action != targets.NoChange {
		t.Fatalf("%s: not converged after apply: %s %q", r.ID(), again.Action, again.Diff)
	}
	return c
}

// srvRestore restores a snapshot and checks the resource observes exactly as it did.
func srvRestore(t *testing.T, tr targets.Transport, d targets.Driver, r config.Resource, snap targets.State, equal func(a, b targets.State) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.Restore(ctx, tr, r, snap); err != nil {
		t.Fatalf("restore %s: %v", r.ID(), err)
	}
	if got := srvHostObserve(t, tr, d, r); !equal(got, snap) {
		t.Fatalf("%s after restore: %+v, want %+v", r.ID(), got, snap)
	}
}

// TestServerDriversObserveInOneRoundTrip observes a resource of every
// server kind on a kind-2 host in one batched call to the agent: no SSH
// round trip (the artifact included), and a stock host shows no change.
func TestServerDriversObserveInOneRoundTrip(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("batch")
	tr := srvDial(t, lab, h)
	h.MustExec(t, "mkdir -p /opt/a/releases/aaaaaaaaaaaa && ln -s releases/aaaaaaaaaaaa /opt/a/current")
	rs := []config.Resource{
		{Kind: "package", Name: "openssh-server", Spec: &targets.PackageSpec{}},
		{Kind: "service", Name: "ssh", Spec: &targets.ServiceSpec{State: targets.ServiceRunning}},
		{Kind: "artifact", Name: "/opt/a", Spec: &targets.ArtifactSpec{URL: "https://artifacts.example/a.tar.gz", SHA256: "aaaaaaaaaaaa" + strings.Repeat("0", 52)}},
		{Kind: "sysctl", Name: "net.ipv4.ip_forward", Spec: &targets.SysctlSpec{Value: "0"}},
		{Kind: "user", Name: "root", Spec: &targets.UserSpec{Shell: "/bin/bash"}},
		{Kind: "group", Name: "root", Spec: &targets.GroupSpec{GID: 0}},
	}
	drivers := targets.Drivers()
	before := tr.RoundTrips()
	states, err := targets.Observe(t.Context(), tr, drivers, rs)
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.RoundTrips() - before; n != 0 {
		t.Fatalf("observing %d resources took %d SSH round trips, want 0 (the agent observes them all)", len(rs), n)
	}
	for _, r := range rs {
		st, ok := states[r.ID()]
		if !ok || !st.Present {
			t.Fatalf("%s: not observed as present: %+v", r.ID(), st)
		}
		c := drivers[r.Kind].Diff(r, st)
		switch {
		case r.Kind == "sysctl":
			// The live value matches; only its persistence is missing.
			if c.Diff != "persisted: (none) -> 0" {
				t.Errorf("%s: %s %q, want only persistence to add", r.ID(), c.Action, c.Diff)
			}
		case c.Action != targets.NoChange:
			t.Errorf("%s: %s %q, want no change on a stock host", r.ID(), c.Action, c.Diff)
		}
	}
}

// BenchmarkObserveServerDriversSSH observes 60 server resources (20
// packages, 20 services, 10 sysctls, 5 users, 5 groups) on a kind-2 host in
// one round trip: the cost of one drift check of such a host.
func BenchmarkObserveServerDriversSSH(b *testing.B) {
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind2("obsbench")
	tr := srvDial(b, lab, h)
	var rs []config.Resource
	pkgs := strings.Fields(h.MustExec(b, "dpkg-query -W -f='${Package}\\n' | head -n 20"))
	for _, p := range pkgs {
		rs = append(rs, config.Resource{Kind: "package", Name: p, Spec: &targets.PackageSpec{}})
	}
	for i := 0; i < 20; i++ {
		rs = append(rs, config.Resource{Kind: "service", Name: "bench" + strconv.Itoa(i), Spec: &targets.ServiceSpec{State: targets.ServiceStopped}})
	}
	for _, k := range []string{"ip_forward", "ip_default_ttl", "tcp_syncookies", "tcp_fin_timeout", "tcp_keepalive_time",
		"tcp_keepalive_intvl", "tcp_keepalive_probes", "tcp_timestamps", "tcp_sack", "tcp_window_scaling"} {
		rs = append(rs, config.Resource{Kind: "sysctl", Name: "net.ipv4." + k, Spec: &targets.SysctlSpec{Value: "1"}})
	}
	for _, n := range []string{"root", "daemon", "bin", "sys", "nobody"} {
		rs = append(rs, config.Resource{Kind: "user", Name: n, Spec: &targets.UserSpec{}})
	}
	for _, n := range []string{"root", "daemon", "bin", "sys", "adm"} {
		rs = append(rs, config.Resource{Kind: "group", Name: n, Spec: &targets.GroupSpec{}})
	}
	drivers := targets.Drivers()
	byKind := map[string][]config.Resource{"all": rs}
	for _, r := range rs {
		byKind[r.Kind] = append(byKind[r.Kind], r)
	}
	for _, kind := range []string{"all", "package", "service", "sysctl", "user", "group"} {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				if _, err := targets.Observe(b.Context(), tr, drivers, byKind[kind]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(byKind[kind])), "resources/op")
		})
	}
}

// reach is how a server-driver test reaches its host: the driftless agent
// over SSH.
type reach func(t *testing.T, lab *hosts.Lab, h *hosts.Host) targets.Transport

// throughAgent runs a server-driver test through the agent, where every
// observation and every apply, restore and refresh must run in the agent:
// the test fails if one opened an SSH session beyond the agent's start.
func throughAgent(t *testing.T, body func(t *testing.T, reach reach)) {
	body(t, func(t *testing.T, lab *hosts.Lab, h *hosts.Host) targets.Transport {
		t.Helper()
		tr := srvDial(t, lab, h)
		started := tr.RoundTrips()
		t.Cleanup(func() {
			if n := tr.RoundTrips() - started; n != 0 && !t.Failed() {
				t.Errorf("%d SSH sessions besides the agent's: an observe or an apply did not go through the agent", n)
			}
			if n := tr.Agent.Starts(); n != 1 && !t.Failed() {
				t.Errorf("the agent was started %d times, want 1", n)
			}
		})
		return tr
	})
}
