package ssh

import (
	"context"
	"fmt"
	"sync"

	"github.com/driftless/driftless/internal/kit"
)

// DefaultParallelism is how many hosts ForEach works on at once when not
// told: the one default, kit.HostParallelism.
const DefaultParallelism = kit.HostParallelism

// Pool keeps one Transport per host key, so every part of the daemon that
// talks to a host shares its one connection.
type Pool struct {
	defaults Config
	lim      *limiter

	mu      sync.Mutex
	entries map[string]*poolEntry
}

type poolEntry struct {
	mu  sync.Mutex
	t   *Transport
	sig string
}

// signature is what identifies a connection's settings: a host whose
// address, login, keys or host-key policy changed needs a new connection.
func (c Config) signature() string {
	return fmt.Sprintf("%q %d %q %q %v %q %q %v %v %v %v %d", c.Address, c.Port, c.User, c.KeyFiles, c.Agent,
		c.KnownHostsFile, c.PinnedKey, c.TrustOnFirstUse, c.Sudo, c.Timeout, c.Keepalive, c.MaxSessions)
}

// NewPool returns a pool whose Get fills the zero fields of each host's
// Config from defaults (user, keys, known_hosts, timeouts); every
// transport logs to the defaults' Logger. At most maxConns connections are
// open at once over all its hosts (ssh.parallelism; 0: no bound): a host
// needing one when all are taken closes the one idle the longest, or waits
// for an operation to end.
func NewPool(defaults Config, maxConns int) *Pool {
	p := &Pool{defaults: defaults, entries: map[string]*poolEntry{}}
	if maxConns > 0 {
		p.lim = newLimiter(maxConns)
	}
	return p
}

// Get returns the pooled transport for key, dialling it on first use, when
// it was closed, or when cfg differs from the settings it was dialled with
// (the old one is then closed). Concurrent callers for the same key share
// one dial.
func (p *Pool) Get(ctx context.Context, key string, cfg Config) (*Transport, error) {
	p.mu.Lock()
	e := p.entries[key]
	if e == nil {
		e = &poolEntry{}
		p.entries[key] = e
	}
	p.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	merged := p.merge(cfg)
	sig := merged.signature()
	if e.t != nil && !e.t.isClosed() && e.sig == sig {
		return e.t, nil
	}
	t, err := dial(ctx, merged, p.lim)
	if err != nil {
		return nil, err
	}
	// The settings changed (a new revision pinned another key, say): the
	// old connection must not be used again.
	if e.t != nil {
		e.t.Close()
	}
	e.t, e.sig = t, sig
	return t, nil
}

// Close closes every pooled transport and empties the pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()
	var first error
	for _, e := range entries {
		e.mu.Lock()
		if e.t != nil {
			if err := e.t.Close(); err != nil && first == nil {
				first = err
			}
		}
		e.mu.Unlock()
	}
	return first
}

// merge fills the zero fields of cfg from the pool's defaults.
func (p *Pool) merge(cfg Config) Config {
	d := p.defaults
	if cfg.Port == 0 {
		cfg.Port = d.Port
	}
	if cfg.User == "" {
		cfg.User = d.User
	}
	if len(cfg.KeyFiles) == 0 {
		cfg.KeyFiles = d.KeyFiles
	}
	cfg.Agent = cfg.Agent || d.Agent
	if cfg.KnownHostsFile == "" {
		cfg.KnownHostsFile = d.KnownHostsFile
	}
	cfg.TrustOnFirstUse = cfg.TrustOnFirstUse || d.TrustOnFirstUse
	cfg.Sudo = cfg.Sudo || d.Sudo
	if cfg.Timeout == 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = d.Keepalive
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = d.MaxSessions
	}
	// One logger for the whole pool: the daemon hands it in once.
	cfg.Logger = d.Logger
	return cfg
}

// ForEach calls fn for every item with at most n calls at once (n <= 0
// means DefaultParallelism) and returns each item's error at its index.
// It waits for every started call; items not started when ctx ends get
// ctx's error.
func ForEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) []error {
	if n <= 0 {
		n = DefaultParallelism
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, it := range items {
		// Checked first: select picks at random when both are ready.
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errs
}
