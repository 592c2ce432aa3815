package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
)

// dialer gives the reconciler a transport per host: the local transport
// (rooted in the host's sandbox folder when one is set) or a pooled SSH
// connection.
type dialer struct {
	pool *ssh.Pool
	// hint, when set, follows every connection error: how to give the
	// settings the command line lacks.
	hint string
}

var _ reconciler.Dialer = (*dialer)(nil)

// newDialer builds the SSH pool from the daemon's SSH defaults.
func newDialer(cfg config.SSH, log zerolog.Logger) *dialer {
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
	return &dialer{pool: ssh.NewPool(defaults, cfg.Parallelism)}
}

// Transport implements reconciler.Dialer.
func (d *dialer) Transport(ctx context.Context, h *config.Host) (targets.Transport, error) {
	if h.Transport == "local" {
		// The agent's code observes in the daemon's own process.
		return agent.Local{Local: targets.NewLocal(h.Root)}, nil
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
	return pooled{t}, nil
}

// Close closes every pooled connection.
func (d *dialer) Close() error { return d.pool.Close() }

// pooled is a pooled SSH transport whose Close leaves the connection in
// the pool: the reconciler closes every transport it is given.
type pooled struct{ *ssh.Transport }

var _ targets.Redialer = pooled{}

// Close keeps the pooled connection open.
func (pooled) Close() error { return nil }
