package reconciler

// The SIGKILL test over SSH: the same world and check as the local one,
// with the hosts on real kind-1 test hosts reached as the daemon reaches
// them, over SSH through a `driftless agent` started on each host (the
// test's own static build, copied by hash on first contact).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// helperSSHEnv carries the child's SSH settings (sshSpec as JSON).
const helperSSHEnv = "DRIFTLESS_HELPER_SSH"

// sshSpec is what a process needs to reach the test hosts.
type sshSpec struct {
	KeyFile    string `json:"key_file"`
	KnownHosts string `json:"known_hosts"`
	// Agent is the driftless binary put on the hosts.
	Agent string `json:"agent"`
}

// agentDialer reaches SSH hosts as the daemon does: one pooled connection
// per host and one agent per connection, kept across runs.
type agentDialer struct {
	pool     *ssh.Pool
	deployer *agent.Deployer
	mu       sync.Mutex
	remotes  map[string]*agent.Remote
}

func newAgentDialer(s sshSpec) *agentDialer {
	return &agentDialer{
		pool: ssh.NewPool(ssh.Config{User: "root", KeyFiles: []string{s.KeyFile}, KnownHostsFile: s.KnownHosts,
			Logger: zerolog.Nop()}, 0),
		deployer: &agent.Deployer{Own: s.Agent},
		remotes:  map[string]*agent.Remote{},
	}
}

// crashSSHDialer is the child's dialer, from its spec's JSON.
func crashSSHDialer(spec string) (*agentDialer, error) {
	var s sshSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", helperSSHEnv, err)
	}
	return newAgentDialer(s), nil
}

func (d *agentDialer) Transport(ctx context.Context, h *config.Host) (targets.Transport, error) {
	t, err := d.pool.Get(ctx, h.Address, ssh.Config{Address: h.Address})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.remotes[h.Address]
	if !ok {
		r = agent.NewRemote(d.deployer)
		d.remotes[h.Address] = r
	}
	return &agent.Transport{Starter: pooledConn{t}, Agent: r}, nil
}

// Close ends the agents' sessions and closes the connections.
func (d *agentDialer) Close() error {
	d.mu.Lock()
	for _, r := range d.remotes {
		r.Close()
	}
	d.mu.Unlock()
	return d.pool.Close()
}

// pooledConn is a pooled connection the reconciler's Close leaves open.
type pooledConn struct{ *ssh.Transport }

func (pooledConn) Close() error { return nil }

// crashSSH is the SIGKILL test's SSH side: its hosts, the child's spec,
// and the parent's own dialer (recovery reaches the hosts through it).
type crashSSH struct {
	hosts  []*hosts.Host
	spec   string
	dialer *agentDialer
}

func (c *crashSSH) addrs() []string {
	var out []string
	for _, h := range c.hosts {
		out = append(out, h.Address)
	}
	return out
}

// reset puts every host back on the old revision, as applying it left
// them: each file's content and mode, each folder's mode, each link's
// target (the native world's folders and links are always reset; the
// file-only world ignores them).
func (c *crashSSH) reset() error {
	for _, h := range c.hosts {
		for i := 0; i < crashFiles; i++ {
			etc := filepath.Join(h.Root, "etc")
			f := filepath.Join(etc, fmt.Sprintf("f%02d.conf", i))
			if err := os.WriteFile(f, []byte(crashContent("old", i)), 0o644); err != nil {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
			if err := os.Chmod(f, 0o644); err != nil {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
			d := filepath.Join(etc, fmt.Sprintf("d%02d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
			if err := os.Chmod(d, 0o755); err != nil {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
			l := filepath.Join(etc, fmt.Sprintf("l%02d", i))
			if err := os.Remove(l); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
			if err := os.Symlink(crashLink("old", i), l); err != nil {
				return fmt.Errorf("reset %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

// TestSIGKILLRecoveryOverSSH is the SIGKILL test with every apply going
// over SSH through a real `driftless agent` on two kind-1 hosts: files
// through the agent's writes, folders and links as its native steps. The
// child (the daemon's side: reconciler, SSH connections, agent clients) is
// killed at a random moment of its rollout, DRIFTLESS_SIGKILL_SSH times
// (10 by default), one iteration at a time on the same hosts; recovery
// then runs here over its own connections and agents, and each host must
// be on one whole revision: contents, folder modes and link targets, no
// temporary file left, and the store naming that revision.
func TestSIGKILLRecoveryOverSSH(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "starts two test hosts and kills 10 child processes")
	}
	if os.Geteuid() != 0 {
		need.Missing(t, "the SIGKILL test over SSH needs root for its test hosts")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	cs := &crashSSH{}
	for h := 0; h < crashHosts; h++ {
		cs.hosts = append(cs.hosts, lab.Kind1(fmt.Sprintf("kill%d", h)))
	}
	spec := sshSpec{KeyFile: lab.ClientKeyFile, KnownHosts: lab.KnownHostsFile, Agent: agentbin.Build(t)}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cs.spec = string(b)
	cs.dialer = newAgentDialer(spec)
	t.Cleanup(func() { cs.dialer.Close() })
	if err := cs.reset(); err != nil {
		t.Fatal(err)
	}
	iterations := 10
	if v := os.Getenv("DRIFTLESS_SIGKILL_SSH"); v != "" {
		if _, err := fmt.Sscan(v, &iterations); err != nil || iterations < 1 {
			t.Fatalf("DRIFTLESS_SIGKILL_SSH=%q: want a positive number", v)
		}
	}
	sigkillLoop(t, buildCrashWorld(t, true, cs), iterations, 1)
}
