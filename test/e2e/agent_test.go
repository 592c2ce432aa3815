package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
)

// TestDaemonThroughAgent runs `driftless serve` on two real hosts, which
// it reaches through its agent: a push converges them, the daemon's own binary is on each
// host under its hash, and a second push converges through the same
// agents (no second copy: the binary's file is not rewritten).
func TestDaemonThroughAgent(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	hs := []*hosts.Host{lab.Kind1("agent-a"), lab.Kind1("agent-b")}
	bin, _ := buildBinaries(t, false)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("agent-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	first := work.Commit(t, map[string]string{"environments/bench.yaml": benchEnv(hs, 1, false)}, "push 1")
	work.Push(t)
	cfg := daemonConfig(t, lab, repoURL, secret, time.Hour)
	d := startDaemon(t, bin, cfg)
	hook.setTarget(d.URL)
	waitFor(t, 2*time.Minute, 50*time.Millisecond, "the first revision to converge", func() error {
		return converged(d, hs, first, 1)
	})
	agentFile := filepath.Join("var/lib/driftless/agent", hex.EncodeToString(sum[:]))
	var stamps []time.Time
	for _, h := range hs {
		fi, err := os.Stat(filepath.Join(h.Root, agentFile))
		if err != nil || fi.Mode().Perm() != 0o700 || fi.Size() != int64(len(data)) {
			t.Fatalf("the agent on %s: %v %v", h.Name, fi, err)
		}
		stamps = append(stamps, fi.ModTime())
	}
	second := work.Commit(t, map[string]string{"environments/bench.yaml": benchEnv(hs, 2, false)}, "push 2")
	work.Push(t)
	waitFor(t, 2*time.Minute, 50*time.Millisecond, "the second revision to converge", func() error {
		return converged(d, hs, second, 2)
	})
	for i, h := range hs {
		fi, err := os.Stat(filepath.Join(h.Root, agentFile))
		if err != nil || !fi.ModTime().Equal(stamps[i]) {
			t.Fatalf("the agent on %s was copied again: %v %v", h.Name, fi, err)
		}
	}
	// The first push went before the daemon listened: the second was
	// delivered by webhook.
	if sent := hook.check(t); sent < 1 {
		t.Fatalf("%d webhooks delivered for the second push", sent)
	}
}

// TestDaemonNetworkThroughAgent runs `driftless serve` with the agent on a
// kind-2 host (systemd as PID 1, its own network namespace) and network
// resources: a push converges an address, a route and a firewall that
// drops all but SSH, applied by the agent and each commit-confirmed; a
// second push that changes the route and whose firewall also drops SSH cuts the host off from new
// connections: the change is not confirmed, the host puts its previous
// ruleset back by itself, the run is not a success, the first revision
// stays applied, and the host is reached again.
func TestDaemonNetworkThroughAgent(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("agent-net")
	h.MustExec(t, "ip link add dl0 type veth peer name dl1 && ip link set dl0 up && ip link set dl1 up")
	bin, _ := buildBinaries(t, false)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("agent-net-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	env := func(via, allow string) string {
		return fmt.Sprintf(`environment: net
hosts:
  - name: %s
    address: %s
    roles: [net]
roles:
  net:
    - address: 10.99.1.1/24
      interface: dl0
    - route: {to: 10.98.0.0/16, via: %s}
      requires: [address:10.99.1.1/24]
    - firewall: {name: edge, allow: [%s], policy: drop}
`, h.Name, h.Address, via, allow)
	}
	first := work.Commit(t, map[string]string{"environments/net.yaml": env("10.99.1.2", "tcp/22, tcp/8080")}, "push 1")
	work.Push(t)
	cfg := daemonConfig(t, lab, repoURL, secret, time.Hour)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("  confirm_timeout: 5s\n")
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, cfg)
	hook.setTarget(d.URL)
	onHost := func() string {
		return h.MustExec(t, "ip -4 -o addr show dev dl0 | awk '{print $4}'; ip route show 10.98.0.0/16; nft list table inet driftless | grep -E 'policy|dport'")
	}
	want := "10.99.1.1/24\n10.98.0.0/16 via 10.99.1.2 dev dl0 \n"
	waitFor(t, 2*time.Minute, 100*time.Millisecond, "the first revision to be applied", func() error {
		st, err := d.env("net")
		if err != nil {
			return err
		}
		if st.Applied != first || st.LastResult != "success" {
			return fmt.Errorf("applied %q, last result %q, last error %q", st.Applied, st.LastResult, st.LastError)
		}
		return nil
	})
	got := onHost()
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "policy drop;") || !strings.Contains(got, "tcp dport 8080 accept") {
		t.Fatalf("the host after the first revision:\n%s", got)
	}
	if left := h.MustExec(t, "ls /run/driftless-confirm 2>/dev/null | grep -c armed; true"); strings.TrimSpace(left) != "0" {
		t.Fatalf("confirmed changes left %s reverts armed", left)
	}
	applied := h.MustExec(t, "nft list ruleset")

	// SSH no longer allowed: new connections are dropped, the one the
	// agent runs over stays (established). The route changes too: two
	// network changes in a row, which must not be joined into one native
	// call without their confirmations.
	second := work.Commit(t, map[string]string{"environments/net.yaml": env("10.99.1.3", "tcp/8080")}, "push 2: no ssh")
	work.Push(t)
	waitFor(t, 2*time.Minute, 100*time.Millisecond, "the second revision to fail", func() error {
		st, err := d.env("net")
		if err != nil {
			return err
		}
		if st.LastResult == "success" || st.LastResult == "" || st.Applied != first {
			return fmt.Errorf("applied %q, last result %q", st.Applied, st.LastResult)
		}
		t.Logf("second revision %s: %s (%s)", second[:8], st.LastResult, st.LastError)
		return nil
	})
	waitFor(t, 30*time.Second, 100*time.Millisecond, "the host to put its ruleset back", func() error {
		if now := h.MustExec(t, "nft list ruleset"); now != applied {
			return fmt.Errorf("ruleset:\n%s", now)
		}
		return nil
	})
	if got := onHost(); !strings.HasPrefix(got, want) {
		t.Fatalf("the host after the cut-off:\n%s", got)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), 5*time.Second)
	if err != nil {
		t.Fatalf("SSH after the host put itself back: %v", err)
	}
	c.Close()
}
