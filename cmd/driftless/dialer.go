package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
)

// dialer gives the reconciler a transport per host: the local transport
// (rooted in the host's sandbox folder when one is set; the kinds run in
// the daemon's own process), or the driftless agent over a pooled SSH
// connection. The agent is the one way to reach an SSH host.
type dialer struct {
	pool *ssh.Pool
	// agents puts the agent on SSH hosts: one per host connection, kept
	// across passes.
	agents *agent.Deployer
	mu     sync.Mutex
	remote map[string]*agent.Remote
	// hint, when set, follows every connection error: how to give the
	// settings the command line lacks.
	hint string
}

var _ reconciler.Dialer = (*dialer)(nil)

// newDialer builds the SSH pool from the daemon's SSH defaults and the
// deployer that puts the daemon's own binary (or one of ag.Binaries) on
// hosts.
func newDialer(cfg config.SSH, ag config.Agent, log zerolog.Logger) (*dialer, error) {
	defaults := ssh.Config{
		User:            cfg.User,
		Agent:           cfg.Agent,
		KnownHostsFile:  cfg.KnownHosts,
		TrustOnFirstUse: cfg.TrustOnFirstUse,
		Timeout:         cfg.Timeout.D(),
		Logger:          log,
	}
	if cfg.KeyFile != "" {
		defaults.KeyFiles = []string{cfg.KeyFile}
	}
	if cfg.KeepaliveSeconds > 0 {
		defaults.Keepalive = time.Duration(cfg.KeepaliveSeconds) * time.Second
	}
	// ssh.parallelism bounds the connections open at once over all
	// environments, as it bounds the hosts worked on at once.
	own, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("agent: find the daemon's own binary: %w", err)
	}
	return &dialer{pool: ssh.NewPool(defaults, cfg.Parallelism), remote: map[string]*agent.Remote{},
		agents: &agent.Deployer{Own: own, Dir: ag.Binaries}}, nil
}

// Transport implements reconciler.Dialer.
func (d *dialer) Transport(ctx context.Context, h *config.Host) (targets.Transport, error) {
	if h.Transport == "local" {
		// The kinds observe and apply natively in the daemon's own process.
		return targets.NewLocal(h.Root), nil
	}
	cfg := ssh.Config{Address: h.Address, Port: h.Port, User: h.User, Sudo: h.Sudo, PinnedKey: h.HostKey}
	key := net.JoinHostPort(h.Address, strconv.Itoa(h.Port)) + "/" + h.User
	t, err := d.pool.Get(ctx, key, cfg)
	if err != nil && d.hint != "" {
		return nil, fmt.Errorf("%w (%s)", err, d.hint)
	}
	if err != nil {
		// The reconciler names the host it connects to.
		return nil, err
	}
	return &agent.Transport{Starter: pooled{t}, Agent: d.agent(key)}, nil
}

// agent returns the agent of the host connection key.
func (d *dialer) agent(key string) *agent.Remote {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.remote[key]
	if !ok {
		r = agent.NewRemote(d.agents)
		d.remote[key] = r
	}
	return r
}

// Close ends the agents' sessions and closes every pooled connection.
func (d *dialer) Close() error {
	d.mu.Lock()
	for _, r := range d.remote {
		r.Close()
	}
	d.mu.Unlock()
	return d.pool.Close()
}

// pooled is a pooled SSH transport whose Close leaves the connection in
// the pool: the reconciler closes every transport it is given.
type pooled struct{ *ssh.Transport }

var _ targets.Redialer = pooled{}

// Close keeps the pooled connection open.
func (pooled) Close() error { return nil }
