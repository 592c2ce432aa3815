package agent_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
)

func dialHost(t testing.TB, lab *hosts.Lab, h *hosts.Host, user string) *ssh.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := ssh.Dial(ctx, ssh.Config{Address: h.Address, User: user, KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// hostResources lays out files, folders and links of every shape on h and
// returns resources observing them, kernel parameters and packages.
func hostResources(t *testing.T, h *hosts.Host, packages ...string) []config.Resource {
	h.MustExec(t, `set -e; mkdir -p /srv/a/dir /srv/a/sticky; chmod 1777 /srv/a/sticky
printf 'port = 8080\n' > /srv/a/app.conf; chmod 0640 /srv/a/app.conf; chown nobody:4242 /srv/a/app.conf
: > /srv/a/empty; printf '#!/bin/sh\n' > /srv/a/setuid; chmod 4755 /srv/a/setuid
printf '\000\001\377\n' > /srv/a/binary; seq 5000 > /srv/a/big
ln -s /srv/a/app.conf /srv/a/link; ln -s /nowhere /srv/a/dangling; mkfifo /srv/a/fifo
mkdir -p /etc/systemd/system; printf '[Service]\nExecStart=/bin/sleep 1000\n' > /etc/systemd/system/dl-app.service
mkdir -p /etc/sysctl.d; printf '# x\nnet.ipv4.ip_forward = 1 \n' > /etc/sysctl.d/99-driftless-net.ipv4.ip_forward.conf
groupadd -g 4343 dl-g1; groupadd -g 4380 dl-empty; groupadd dl-g2; groupadd -g 4343 -o dl-g1twin
useradd -M -s /bin/false -G dl-g1,dl-g2 dl-u1; useradd -M -g dl-g1 dl-u2; gpasswd -a dl-u2 dl-g1 >/dev/null; gpasswd -a dl-u2 dl-g1twin >/dev/null
echo 'dl-u3:x:5001:5999:no group:/nonexistent:/usr/sbin/nologin' >> /etc/passwd
ip link add dl0 type veth peer name dl1; ip link set dl0 up; ip link set dl1 up
ip addr add 10.99.1.2/24 dev dl0; ip addr add 10.99.2.2/28 dev dl0; ip addr add fd00:99::2/64 dev dl0 nodad
ip route add 10.97.0.0/16 via 10.99.1.3; ip route add 10.96.0.0/16 dev dl0 metric 50; ip route add 10.95.0.5 via 10.99.1.4 proto static
ip route add 10.94.0.0/16 via 10.99.1.5; ip route add 10.94.0.0/16 via 10.99.1.6 metric 7; ip route add blackhole 10.93.0.0/16
ip route add 10.92.0.0/16 via 10.99.1.7 table 7; ip -6 route add fd00:98::/64 via fd00:99::3; ip route add default via 10.99.1.1 metric 900 || true`)
	big, err := exec.Command("seq", "5000").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rs []config.Resource
	for _, p := range []string{"/srv/a/app.conf", "/srv/a/empty", "/srv/a/setuid", "/srv/a/binary", "/srv/a/missing",
		"/srv/a/app.conf/below", "/srv/a/dir", "/srv/a/link", "/srv/a/fifo"} {
		rs = append(rs, config.Resource{Kind: "file", Name: p, Spec: &targets.FileSpec{Content: "x"}})
	}
	rs = append(rs,
		config.Resource{Kind: "file", Name: "/srv/a/big", Spec: &targets.FileSpec{Content: string(big)}},
		config.Resource{Kind: "file", Name: "/etc/hostname", Spec: &targets.FileSpec{Content: strings.Repeat("y", 20000)}})
	for _, p := range []string{"/srv/a/app.conf", "/srv/a/none", "/srv/a/dir"} {
		rs = append(rs, config.Resource{Kind: "env", Name: p, Spec: &targets.EnvSpec{Vars: map[string]string{"A": "1"}}})
	}
	for _, p := range []string{"/srv/a/dir", "/srv/a/sticky", "/srv/a/none", "/srv/a/app.conf", "/root", "/tmp"} {
		rs = append(rs, config.Resource{Kind: "directory", Name: p, Spec: &targets.DirectorySpec{}})
	}
	for _, p := range []string{"/srv/a/link", "/srv/a/dangling", "/srv/a/dir", "/srv/a/none"} {
		rs = append(rs, config.Resource{Kind: "symlink", Name: p, Spec: &targets.SymlinkSpec{Target: "/x"}})
	}
	for _, n := range []string{"net.ipv4.ip_forward", "net.ipv4.tcp_rmem", "kernel.hostname", "kernel.nonesuch"} {
		rs = append(rs, config.Resource{Kind: "sysctl", Name: n, Spec: &targets.SysctlSpec{Value: "1"}})
	}
	for _, n := range []string{"ssh", "dbus.service", "systemd-journald", "dl-app", "dl-nonesuch"} {
		rs = append(rs, config.Resource{Kind: "service", Name: n, Spec: &targets.ServiceSpec{State: "running"}})
	}
	for _, n := range []string{"root", "nobody", "dl-u1", "dl-u2", "dl-u3", "dl-nonesuch"} {
		rs = append(rs, config.Resource{Kind: "user", Name: n, Spec: &targets.UserSpec{}})
	}
	for _, n := range []string{"root", "dl-g1", "dl-g2", "dl-g1twin", "dl-empty", "dl-u1", "dl-nonesuch"} {
		rs = append(rs, config.Resource{Kind: "group", Name: n, Spec: &targets.GroupSpec{}})
	}
	for _, n := range []string{"10.99.1.2/24", "10.99.2.2/24", "fd00:99::2/64", "10.99.3.2/24"} {
		rs = append(rs, config.Resource{Kind: "address", Name: n, Spec: &targets.AddressSpec{Interface: "dl0"}})
	}
	rs = append(rs, config.Resource{Kind: "address", Name: "10.99.9.9/24", Spec: &targets.AddressSpec{Interface: "dl-nonesuch"}})
	for _, n := range []string{"10.97.0.0/16", "10.96.0.0/16", "10.95.0.5/32", "10.94.0.0/16", "10.93.0.0/16", "10.92.0.0/16",
		"fd00:98::/64", "10.99.1.0/24", "default", "10.91.0.0/16"} {
		rs = append(rs, config.Resource{Kind: "route", Name: n, Spec: &targets.RouteSpec{Dev: "dl0"}})
	}
	for _, n := range packages {
		rs = append(rs, config.Resource{Kind: "package", Name: n, Spec: &targets.PackageSpec{}})
	}
	return rs
}

// agentStates observes rs through the agent of at and fails unless
// exactly the resources named in failed fail. (It compared the agent with
// the shell probes until those were deleted; the assertions on the
// states after each call are now the only ones.)
func agentStates(t *testing.T, at targets.Transport, rs []config.Resource, failed ...string) map[string]targets.State {
	t.Helper()
	states, err := targets.Observe(context.Background(), at, targets.Drivers(), rs)
	sort.Strings(failed)
	if got := failedIDs(err); !slices.Equal(got, failed) || len(states) != len(rs)-len(failed) {
		t.Errorf("%d states of %d resources, failed %v, want %v: %v", len(states), len(rs), got, failed, err)
	}
	return states
}

// noSystemd are the resources of hostResources that fail on a host
// without systemd (its services) or for want of their interface.
var noSystemd = []string{"service:ssh", "service:dbus.service", "service:systemd-journald", "service:dl-app",
	"service:dl-nonesuch", "address:10.99.9.9/24"}

// TestAgentOverSSH deploys the agent to real hosts (a Debian kind-1 host,
// an rpm one, a systemd kind-2 one, and as a user without root) and checks
// what it observes of every kind, that it is
// copied once and kept across passes, that a dead agent is started again,
// and that a binary changed on the host is not run but copied again.
func TestAgentOverSSH(t *testing.T) {
	bin := agentbin.Build(t)
	lab := hosts.NewLab(t, hosts.Options{})
	d := &agent.Deployer{Own: bin}
	sum := fileSum(t, bin)
	ctx := context.Background()

	t.Run("debian kind-1", func(t *testing.T) {
		h := lab.Kind1("agent-deb")
		tr := dialHost(t, lab, h, "root")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		at := &agent.Transport{Starter: tr, Agent: rem}
		rs := hostResources(t, h, "bash", "coreutils", "openssh-server", "dl-nonesuch", "Bash_Upper")
		states := agentStates(t, at, rs, noSystemd...)
		if !states["package:bash"].Present || states["file:/srv/a/big"].Fields["mode"] != "0644" {
			t.Fatalf("the agent saw an odd host: %+v", states)
		}
		if a, r := states["address:10.99.2.2/24"], states["route:10.94.0.0/16"]; a.Fields["address"] != "10.99.2.2/28" || r.Fields["count"] != "2" || states["route:10.95.0.5/32"].Fields["protocol"] != "static" {
			t.Fatalf("the agent saw other addresses and routes: %+v %+v %+v", a, r, states["route:10.95.0.5/32"])
		}
		// The firewall: no driftless table, then one with two resources'
		// chains, listed once for both.
		fw := []config.Resource{
			{Kind: "firewall", Name: "web", Spec: &targets.FirewallSpec{Allow: []string{"tcp/8080"}}},
			{Kind: "firewall", Name: "ops", Spec: &targets.FirewallSpec{Allow: []string{"tcp/22"}, Policy: "drop"}},
			{Kind: "firewall", Name: "gone", Spec: &targets.FirewallSpec{Allow: []string{"icmp"}}},
		}
		if st := agentStates(t, at, fw); st["firewall:web"].Fields["table"] != "absent" {
			t.Fatalf("the agent saw a driftless table: %+v", st)
		}
		h.MustExec(t, `nft -f - <<'EOF'
table inet driftless {
	chain input { type filter hook input priority 0; policy accept; jump fw_web; jump fw_ops; }
	chain fw_web { tcp dport 8080 accept; tcp dport 8081 counter accept; }
	chain fw_ops { ip saddr 10.0.0.0/8 tcp dport 22 accept; }
}
EOF`)
		if st := agentStates(t, at, fw); !st["firewall:web"].Present || !strings.Contains(string(st["firewall:ops"].Content), "dport 22") || st["firewall:gone"].Present {
			t.Fatalf("the agent saw no driftless table: %+v", st)
		}
		// Command checks run through the agent: no SSH session per check,
		// the same outcomes as the shell's, and a check out of time is
		// killed with its process group.
		runner := verify.New(verify.Options{})
		trips := tr.RoundTrips()
		for _, c := range []struct {
			cmd    string
			ok     bool
			reason string
		}{
			{"test -f /srv/a/app.conf && id -un | grep -qx root", true, "exited 0"},
			{"echo first >&2; echo oops >&2; exit 3", false, "got exit 3 (stderr: first | oops)"},
			{"sleep 300 & sleep 301", false, "deadline exceeded"},
		} {
			chk := config.Check{Command: c.cmd, Timeout: config.Duration(2 * time.Second)}
			want := runner.Check(ctx, chk, nil, tr)
			h.MustExec(t, "pkill -x sleep || true") // what the SSH session left
			got := runner.Check(ctx, chk, nil, at)
			if got.OK != c.ok || !strings.Contains(got.Reason, c.reason) || got.OK != want.OK {
				t.Fatalf("check %q through the agent: ok %v %q; over SSH: ok %v %q", c.cmd, got.OK, got.Reason, want.OK, want.Reason)
			}
		}
		if n := tr.RoundTrips() - trips; n != 3 {
			t.Fatalf("3 checks through the agent and 3 over SSH made %d SSH round trips, want 3 (the SSH ones)", n)
		}
		if out := h.MustExec(t, "pgrep -x sleep || true"); strings.TrimSpace(out) != "" {
			t.Fatalf("the check out of time still runs: %s", out)
		}
		if u := states["user:dl-u1"]; u.Fields["groups"] != "dl-g1,dl-g2" || states["user:dl-u2"].Fields["primary"] != "dl-g1" {
			t.Fatalf("the agent saw no supplementary groups: %+v %+v", u, states["user:dl-u2"])
		}
		fi, err := os.Stat(filepath.Join(h.Root, "var/lib/driftless/agent", sum))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("agent binary on the host: %v %v", fi, err)
		}
		// Kept across passes: the next observations start nothing and
		// run no shell script. (Services fail on this host without
		// systemd, and so does the address on a missing interface.)
		var noServices []config.Resource
		for _, r := range rs {
			if r.Kind != "service" && r.ID() != "address:10.99.9.9/24" {
				noServices = append(noServices, r)
			}
		}
		rs = noServices
		before := tr.RoundTrips()
		for range 3 {
			if _, err := targets.Observe(ctx, at, targets.Drivers(), rs); err != nil {
				t.Fatal(err)
			}
		}
		if n := tr.RoundTrips() - before; n != 0 || rem.Starts() != 1 {
			t.Fatalf("three more passes: %d round trips, %d agent starts; want 0 and 1", n, rem.Starts())
		}
		// A dead agent is started again, and the observation it was
		// killed under is asked again.
		h.MustExec(t, "kill -9 $(pidof "+sum+")")
		if _, err := targets.Observe(ctx, at, targets.Drivers(), rs); err != nil {
			t.Fatalf("observe after the agent was killed: %v", err)
		}
		if rem.Starts() != 2 {
			t.Fatalf("%d agent starts after a kill, want 2", rem.Starts())
		}
		// A binary changed on the host is not started: copied again.
		// Closing the session ends the agent; the file is replaced once the
		// process is gone (a running binary cannot be written: ETXTBSY).
		rem.Close()
		h.MustExec(t, "while pidof "+sum+" >/dev/null; do sleep 0.05; done; printf '#!/bin/sh\\necho driftless-agent-start; echo pwned >/tmp/pwned\\n' > /var/lib/driftless/agent/"+sum)
		agentStates(t, at, rs)
		if _, err := os.Stat(filepath.Join(h.Root, "tmp/pwned")); err == nil {
			t.Fatal("a binary that does not hash to the daemon's ran")
		}
		if got := fileSum(t, filepath.Join(h.Root, "var/lib/driftless/agent", sum)); got != sum {
			t.Fatalf("the changed binary was not replaced: %s", got)
		}
	})

	t.Run("rpm kind-1", func(t *testing.T) {
		lab.RPMRepo(hosts.HelloRPMs()...)
		h := lab.Kind1RPM("agent-rpm")
		h.MustExec(t, "dnf -y -q install dl-hello >/dev/null 2>&1")
		tr := dialHost(t, lab, h, "root")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		states := agentStates(t, &agent.Transport{Starter: tr, Agent: rem}, hostResources(t, h, "dl-hello", "bash", "dl-nonesuch", "dl-hello-2.0"), noSystemd...)
		if p := states["package:dl-hello"]; p.Fields["manager"] != "dnf" || !p.Present || p.Fields["version"] != "2.0-1" {
			t.Fatalf("the agent saw no dl-hello 2.0: %+v", p)
		}
		// rpm also matches a name with its version, as rpm -q does.
		if p := states["package:dl-hello-2.0"]; !p.Present || p.Fields["version"] != "2.0-1" || states["package:dl-nonesuch"].Present {
			t.Fatalf("the agent saw %+v and %+v", p, states["package:dl-nonesuch"])
		}
	})

	t.Run("systemd kind-2, a user without root", func(t *testing.T) {
		h := lab.Kind2("agent-k2")
		if err := h.AddLogin("deploy", false); err != nil {
			t.Fatal(err)
		}
		tr := dialHost(t, lab, h, "deploy")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		// Without root the agent cannot read the file only its owner
		// and group may read.
		states := agentStates(t, &agent.Transport{Starter: tr, Agent: rem}, hostResources(t, h, "bash", "systemd", "dl-nonesuch"),
			"file:/srv/a/app.conf", "env:/srv/a/app.conf", "address:10.99.9.9/24")
		if s := states["service:systemd-journald"]; s.Fields["active"] != "active" || states["service:dl-app"].Fields["unitfile"] != "1" {
			t.Fatalf("the agent saw no systemd: %+v %+v", s, states["service:dl-app"])
		}
		if _, err := os.Stat(filepath.Join(h.Root, "home/deploy/.cache/driftless/agent", sum)); err != nil {
			t.Fatalf("the agent of a user without root is not in its cache folder: %v", err)
		}
	})
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// failedIDs lists the resources an Observe error names.
func failedIDs(err error) []string {
	var ids []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var oe *targets.ObserveError
			if errors.As(e, &oe) {
				ids = append(ids, oe.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// TestDriversThroughAgent runs the file, directory, symlink, env and
// command drivers on a real host through the agent (observations and file
// writes by the agent, scripts by the shell): a first pass converges, a
// second is a no-op, changes behind driftless's back are healed, restoring
// the first pass's snapshots puts the host back, and a converged pass runs
// one shell script (the command's guard) where it ran one per pass before,
// with one process per resource.
func TestDriversThroughAgent(t *testing.T) {
	bin := agentbin.Build(t)
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("agent-drv")
	tr := dialHost(t, lab, h, "root")
	rem := agent.NewRemote(&agent.Deployer{Own: bin})
	t.Cleanup(func() { rem.Close() })
	at := &agent.Transport{Starter: tr, Agent: rem}
	ctx := context.Background()
	drivers := targets.Drivers()

	h.MustExec(t, "printf 'welcome\\n' > /etc/motd-test && chmod 0644 /etc/motd-test")
	rs := []config.Resource{
		{Kind: "directory", Name: "/srv/app", Spec: &targets.DirectorySpec{Mode: "0750", Owner: "nobody"}},
		{Kind: "file", Name: "/srv/app/app.conf", Spec: &targets.FileSpec{Content: "port = 8080\nlog = info\n", Mode: "0640", Owner: "nobody", Group: "nogroup"}},
		{Kind: "symlink", Name: "/srv/app/current", Spec: &targets.SymlinkSpec{Target: "/srv/app/app.conf"}},
		{Kind: "env", Name: "/etc/app.env", Spec: &targets.EnvSpec{Vars: map[string]string{"APP_PORT": "8080", "GREETING": "hello world"}}},
		{Kind: "command", Name: "init", Spec: &targets.CommandSpec{
			Run: "touch .initialised", Dir: "/srv/app", Creates: "/srv/app/.initialised", Undo: "rm -f /srv/app/.initialised"}},
		{Kind: "file", Name: "/etc/motd-test", Spec: &targets.FileSpec{State: config.Absent}},
	}
	pass := func(want ...targets.Action) []targets.Change {
		t.Helper()
		changes, err := targets.PlanHost(ctx, at, drivers, rs)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range changes {
			if c.Action != want[i] {
				t.Fatalf("%s: %s, want %s\n%s", c.ID, c.Action, want[i], c.Diff)
			}
			if c.Action == targets.NoChange {
				continue
			}
			rt := tr.RoundTrips()
			if err := drivers[c.Kind].Apply(ctx, at, rs[i], c.Before); err != nil {
				t.Fatalf("apply %s: %v", c.ID, err)
			}
			if n := tr.RoundTrips() - rt; targets.Native(targets.Drivers()[rs[i].Kind]) && n != 0 {
				t.Fatalf("apply %s through the agent ran %d shell scripts, want none", c.ID, n)
			}
		}
		return changes
	}
	c, none := targets.Create, targets.NoChange
	first := pass(c, c, c, c, c, targets.Delete)
	before := tr.RoundTrips()
	pass(none, none, none, none, none, none)
	// The command's guard (creates) is observed by the agent too: no
	// script at all.
	if n := tr.RoundTrips() - before; n != 0 {
		t.Fatalf("a converged pass through the agent ran %d shell scripts, want 0", n)
	}
	got := h.MustExec(t, "stat -c '%a %U' /srv/app; stat -c '%a %U %G' /srv/app/app.conf; cat /srv/app/current; . /etc/app.env; echo \"$GREETING\"; ls -a /srv/app; test -e /etc/motd-test || echo gone")
	want := "750 nobody\n640 nobody nogroup\nport = 8080\nlog = info\nhello world\n.\n..\n.initialised\napp.conf\ncurrent\ngone\n"
	if got != want {
		t.Fatalf("host after the first pass:\n%s\nwant\n%s", got, want)
	}
	h.MustExec(t, `chmod 0777 /srv/app && echo 'port = 1' > /srv/app/app.conf && chown root /srv/app/app.conf && ln -sfn /etc/passwd /srv/app/current &&
		sed -i 's/^APP_PORT=.*/APP_PORT=1/' /etc/app.env && rm /srv/app/.initialised && echo back > /etc/motd-test`)
	u := targets.Update
	pass(u, u, u, u, c, targets.Delete)
	pass(none, none, none, none, none, none)
	if got := h.MustExec(t, "stat -c %a /srv/app; stat -c '%a %U' /srv/app/app.conf; cat /srv/app/app.conf; readlink /srv/app/current; grep APP_PORT /etc/app.env"); got != "750\n640 nobody\nport = 8080\nlog = info\n/srv/app/app.conf\nAPP_PORT=8080\n" {
		t.Fatalf("host not healed:\n%s", got)
	}
	for i := len(first) - 1; i >= 0; i-- {
		rt := tr.RoundTrips()
		if err := drivers[first[i].Kind].Restore(ctx, at, rs[i], first[i].Before); err != nil {
			t.Fatalf("restore %s: %v", first[i].ID, err)
		}
		if n := tr.RoundTrips() - rt; targets.Native(targets.Drivers()[rs[i].Kind]) && n != 0 {
			t.Fatalf("restore %s through the agent ran %d shell scripts, want none", first[i].ID, n)
		}
	}
	if got := h.MustExec(t, "for p in /srv/app /etc/app.env; do test -e $p && echo \"$p still there\"; done; stat -c %a /etc/motd-test; cat /etc/motd-test"); got != "644\nwelcome\n" {
		t.Fatalf("host after restore:\n%s", got)
	}
	// A write into a folder that does not exist fails, after the files
	// before it, and leaves nothing behind.
	n, err := at.WriteFiles(ctx, []targets.FileWrite{
		{Path: "/srv/w1", Data: []byte("1\n"), Mode: 0o600},
		{Path: "/srv/nowhere/w2", Data: []byte("2\n"), Mode: 0o600},
		{Path: "/srv/w3", Data: []byte("3\n"), Mode: 0o600},
	})
	if n != 1 || err == nil || !strings.Contains(err.Error(), "/srv/nowhere/w2") {
		t.Fatalf("write with a missing folder: %d, %v", n, err)
	}
	if got := h.MustExec(t, "ls -a /srv; stat -c %a /srv/w1"); got != ".\n..\nw1\n600\n" {
		t.Fatalf("after the failed write: %q", got)
	}
}
