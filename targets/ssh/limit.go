package ssh

import (
	"context"
	"sync"
	"time"
)

// limiter bounds the connections a Pool keeps open at once, over every
// host and environment that share the pool. A transport that needs a
// connection when all are taken closes the one idle the longest (no
// operation running on it: it reconnects on its next use), or waits until
// an operation ends somewhere.
type limiter struct {
	max int

	mu sync.Mutex
	// reserved counts connections being dialled.
	reserved int
	open     map[*conn]*Transport
	// changed is closed, and replaced, whenever a slot may have freed up.
	changed chan struct{}
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, open: map[*conn]*Transport{}, changed: make(chan struct{})}
}

// acquire reserves a connection for t, closing an idle one of another
// transport when the bound is reached, or waiting for one to become idle.
// The caller dials, then calls attach, or cancel when the dial failed.
func (l *limiter) acquire(ctx context.Context, t *Transport) error {
	for {
		l.mu.Lock()
		if l.reserved+len(l.open) < l.max || l.evictIdle(t) {
			l.reserved++
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// attach records the dialled connection in the reservation's place.
func (l *limiter) attach(c *conn, t *Transport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved--
	l.open[c] = t
}

// cancel gives back a reservation whose dial failed.
func (l *limiter) cancel() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved--
	l.signal()
}

// release forgets a connection that ended; a second call does nothing.
func (l *limiter) release(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.open[c]; ok {
		delete(l.open, c)
		l.signal()
	}
}

// idle wakes the waiters: an operation ended, so a connection may be idle.
func (l *limiter) idle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signal()
}

func (l *limiter) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// evictIdle closes the open connection idle the longest, of a transport
// other than asker, and reports whether there was one. It runs under l.mu
// and only tries the transports' locks: a transport holding its own lock
// is busy connecting or working, so it is not idle anyway.
func (l *limiter) evictIdle(asker *Transport) bool {
	var victim *conn
	var oldest time.Time
	for c, t := range l.open {
		if t == asker || !t.mu.TryLock() {
			continue
		}
		if t.busy == 0 && t.conn == c && (victim == nil || t.lastUsed.Before(oldest)) {
			victim, oldest = c, t.lastUsed
		}
		t.mu.Unlock()
	}
	if victim == nil {
		return false
	}
	t := l.open[victim]
	if !t.mu.TryLock() {
		return false
	}
	defer t.mu.Unlock()
	if t.busy != 0 || t.conn != victim {
		return false
	}
	t.conn = nil
	delete(l.open, victim)
	victim.client.Close()
	t.log.Debug().Msg("ssh connection closed to stay within ssh.parallelism")
	return true
}
