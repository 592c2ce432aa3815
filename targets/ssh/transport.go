package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	gossh "golang.org/x/crypto/ssh"

	"github.com/driftless/driftless/targets"
)

var (
	_ targets.Transport = (*Transport)(nil)
	_ targets.Redialer  = (*Transport)(nil)
)

// Transport is one SSH connection to one host; every Run opens a session
// multiplexed on it. It is safe for concurrent use.
type Transport struct {
	cfg        Config
	log        zerolog.Logger
	roundTrips atomic.Int64
	// slots holds one token per running command (Config.MaxSessions).
	slots chan struct{}

	// lim bounds the connections of the pool this transport belongs to
	// (nil: unbounded).
	lim *limiter

	mu     sync.Mutex
	conn   *conn
	closed bool
	// busy counts the operations running; lastUsed is when the last ended.
	busy     int
	lastUsed time.Time
	wg       sync.WaitGroup
}

// conn is one established connection; dead is closed when it ended.
type conn struct {
	client *gossh.Client
	dead   chan struct{}
}

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// Dial connects to the host and checks its key before anything else is
// sent. The connection is kept open until Close.
func Dial(ctx context.Context, cfg Config) (*Transport, error) {
	return dial(ctx, cfg, nil)
}

// dial is Dial with the pool's bound on open connections (nil: none).
func dial(ctx context.Context, cfg Config, lim *limiter) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{cfg: cfg, log: cfg.Logger.With().Str("host", cfg.Address).Logger(),
		slots: make(chan struct{}, cfg.MaxSessions), lim: lim}
	if _, err := t.current(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// Redial opens a fresh, independent connection to the same host. It is
// not counted against the pool's bound: it confirms a network change while
// the host's pooled connection may be in use, and waiting for a slot then
// could outlast the change's confirmation timeout.
func (t *Transport) Redial(ctx context.Context) (targets.Transport, error) {
	return Dial(ctx, t.cfg)
}

// Root is "" on a real host: managed paths are used as they are.
func (t *Transport) Root() string { return "" }

// Address is the host this transport reaches.
func (t *Transport) Address() string { return t.cfg.Address }

// RoundTrips counts the remote commands run so far (one per Run or WriteFile).
func (t *Transport) RoundTrips() int64 { return t.roundTrips.Load() }

// Close ends the connection and its keepalive; later calls fail with ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	c := t.conn
	t.conn = nil
	t.mu.Unlock()
	var err error
	if c != nil {
		if err = c.client.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	}
	t.wg.Wait()
	return err
}

// Connection identifies the live connection, nil when there is none: a
// session started on one connection (the driftless agent's) ended with it
// once the transport's connection is another or none (the pool closes an
// idle one to stay within ssh.parallelism).
func (t *Transport) Connection() any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil || !t.conn.alive() {
		return nil
	}
	return t.conn
}

// Hold marks the transport busy until release is called, so that its
// connection is not closed to make room for another host's while a
// session started on it (the agent's) is answering a request.
func (t *Transport) Hold() (release func()) {
	t.enter()
	return t.leave
}

// isClosed reports whether Close was called.
func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// current returns the live connection, connecting when there is none or
// the last one dropped.
func (t *Transport) current(ctx context.Context) (*conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("ssh %s: %w", t.cfg.Address, ErrClosed)
	}
	if t.conn != nil && t.conn.alive() {
		return t.conn, nil
	}
	if t.conn != nil {
		t.log.Debug().Msg("ssh connection dropped, reconnecting")
	}
	if t.lim == nil {
		c, err := t.connect(ctx)
		if err != nil {
			return nil, err
		}
		t.conn = c
		return c, nil
	}
	if err := t.lim.acquire(ctx, t); err != nil {
		return nil, fmt.Errorf("ssh %s: wait for a connection within ssh.parallelism: %w", t.cfg.Address, err)
	}
	c, err := t.connect(ctx)
	if err != nil {
		t.lim.cancel()
		return nil, err
	}
	t.lim.attach(c, t)
	t.conn = c
	return c, nil
}

// enter and leave bracket an operation: a connection is idle, and may be
// closed to make room for another host's, only between operations.
func (t *Transport) enter() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy++
}

func (t *Transport) leave() {
	t.mu.Lock()
	t.busy--
	t.lastUsed = time.Now()
	t.mu.Unlock()
	if t.lim != nil {
		t.lim.idle()
	}
}

// connect dials, handshakes and authenticates within the timeout, then
// starts the watcher and the keepalive of the new connection.
func (t *Transport) connect(ctx context.Context) (*conn, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	auth, closeAgent, err := t.cfg.authMethods()
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	cc, err := t.cfg.clientConfig(auth)
	if err != nil {
		return nil, err
	}
	addr := t.cfg.hostPort()
	d := net.Dialer{Timeout: t.cfg.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// The handshake has no context of its own: the deadline bounds it and
	// the AfterFunc ends it when the caller gives up.
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline) //nolint:errcheck // a failed deadline only loses the bound
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, cc)
	stop()
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake with %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	nc.SetDeadline(time.Time{}) //nolint:errcheck // see above
	c := &conn{client: gossh.NewClient(sc, chans, reqs), dead: make(chan struct{})}
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		c.client.Wait() //nolint:errcheck // the reason a connection ended is not actionable here
		close(c.dead)
		if t.lim != nil {
			t.lim.release(c)
		}
	}()
	go func() {
		defer t.wg.Done()
		t.keepalive(c)
	}()
	t.log.Debug().Dur("duration_ms", time.Since(start)).Msg("ssh connected")
	return c, nil
}

// keepalive sends keepalive@openssh.com on an interval so that idle NAT
// and firewall state survives, and closes a connection whose peer stopped
// answering so that the next operation reconnects instead of hanging.
func (t *Transport) keepalive(c *conn) {
	if t.cfg.Keepalive < 0 {
		return
	}
	tick := time.NewTicker(t.cfg.Keepalive)
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
			guard := time.AfterFunc(t.cfg.Timeout, func() { c.client.Close() })
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			guard.Stop()
			if err != nil {
				t.log.Debug().Err(err).Msg("ssh keepalive failed")
				c.client.Close()
				return
			}
		}
	}
}
