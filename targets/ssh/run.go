package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/driftless/driftless/targets"
)

// Run runs script with /bin/sh on the host, feeding it stdin. The script
// travels on the session's standard input ahead of stdin, so neither its
// size nor its bytes are limited by the remote command line, and stdin may
// be binary. Exit statuses are in Result.Exit; an error means the script
// could not be run or the operation timed out.
func (t *Transport) Run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	res, err := t.run(ctx, script, stdin)
	if err != nil {
		return res, fmt.Errorf("run on %s: %w", t.cfg.Address, err)
	}
	return res, nil
}

// bound gives an operation its deadline: the caller's when it set one (a
// package install may need minutes, most scripts far less), otherwise the
// configured Timeout, so that no operation is ever unbounded.
func (t *Transport) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, t.cfg.Timeout)
}

// remoteCommand first prints the process group of the remote shell (so a
// timed-out script can be killed: OpenSSH refuses signal requests on root
// sessions), then reads exactly n bytes of standard input and evaluates
// them in the same shell, which then reads the rest of its input as the
// script's stdin. The script is wrapped in braces by wrapScript, so a
// truncated transfer is a syntax error and runs nothing.
func (t *Transport) remoteCommand(n int) string {
	inner := fmt.Sprintf(`g=0; { read -r _ _ _ _ g _ </proc/$$/stat; } 2>/dev/null; echo "%s$g"; eval "$(head -c %d)"`, groupMarker, n)
	cmd := "exec /bin/sh -c " + targets.ShellQuote(inner)
	if t.cfg.Sudo {
		cmd = "exec sudo -n -- /bin/sh -c " + targets.ShellQuote(inner)
	}
	return cmd
}

// wrapScript makes the script one compound command: the shell parses all of
// it before running any of it.
func wrapScript(script string) []byte {
	return []byte("{\n" + script + "\n}\n")
}

func (t *Transport) run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	t.enter()
	defer t.leave()
	select {
	case t.slots <- struct{}{}:
		defer func() { <-t.slots }()
	case <-ctx.Done():
		return targets.Result{}, fmt.Errorf("wait for a free ssh session: %w", ctx.Err())
	}
	sess, c, err := t.session(ctx)
	if err != nil {
		return targets.Result{}, err
	}
	body := wrapScript(script)
	var stdout groupWriter
	var stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	// Stdin is fed by our own goroutine rather than through sess.Stdin: a
	// script may exit without reading all of its input, and the failed
	// write must not turn its exit status into an error.
	in, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return targets.Result{}, fmt.Errorf("open remote stdin: %w", err)
	}
	t.roundTrips.Add(1)
	// Start waits for the server's reply with no context of its own: a
	// peer that stopped answering would block it forever, so the deadline
	// drops the connection (the next operation reconnects).
	stop := context.AfterFunc(ctx, func() { c.client.Close() })
	err = sess.Start(t.remoteCommand(len(body)))
	stop()
	if err != nil {
		sess.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return targets.Result{}, fmt.Errorf("start remote shell: %w", err)
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		io.Copy(in, io.MultiReader(bytes.NewReader(body), bytes.NewReader(stdin))) //nolint:errcheck // see above
		in.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
		// The channel is closed now, so a pending write fails at once.
		<-fed
	case <-ctx.Done():
		t.abandon(sess, done, stdout.group())
		<-fed
		return targets.Result{Stdout: stdout.bytes(), Stderr: stderr.Bytes()}, ctx.Err()
	}
	res := targets.Result{Stdout: stdout.bytes(), Stderr: stderr.Bytes()}
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		res.Exit = ee.ExitStatus()
		return res, nil
	default:
		return res, fmt.Errorf("remote shell ended without an exit status: %w", err)
	}
}

// abandon stops a session whose operation timed out: it kills the remote
// process group from a second session, closes the channel, and if the peer
// does not answer even that, drops the whole connection so nothing is left
// waiting.
func (t *Transport) abandon(sess *gossh.Session, done <-chan error, group int) {
	if group > 1 {
		t.killGroup(group)
	}
	sess.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.log.Debug().Int("group", group).Msg("timed-out session did not end, dropping the connection")
		t.mu.Lock()
		c := t.conn
		t.mu.Unlock()
		if c != nil {
			c.client.Close()
		}
		<-done
	}
}

// killGroup SIGKILLs a remote process group, with its own short timeout.
func (t *Transport) killGroup(group int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, _, err := t.session(ctx)
	if err != nil {
		return
	}
	defer sess.Close()
	cmd := fmt.Sprintf("kill -9 -- -%d", group)
	if t.cfg.Sudo {
		cmd = "sudo -n " + cmd
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
		if err != nil {
			t.log.Debug().Err(err).Int("group", group).Msg("kill timed-out remote script")
		}
	case <-ctx.Done():
		sess.Close()
		<-done
	}
}

// session opens a session, reconnecting once when the connection turns out
// to have dropped. Nothing has run remotely before a session exists, so the
// retry cannot run anything twice. A server that refuses one session (its
// MaxSessions is reached while closed sessions are still being released)
// has a healthy connection: the open is retried after a short pause.
func (t *Transport) session(ctx context.Context) (*gossh.Session, *conn, error) {
	reconnected := false
	pause := 10 * time.Millisecond
	for {
		c, err := t.current(ctx)
		if err != nil {
			return nil, nil, err
		}
		// As for Start: the deadline drops a connection that does not answer.
		stop := context.AfterFunc(ctx, func() { c.client.Close() })
		sess, err := c.client.NewSession()
		stop()
		if err == nil {
			return sess, c, nil
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("open ssh session: %w", ctx.Err())
		}
		var refused *gossh.OpenChannelError
		if errors.As(err, &refused) {
			select {
			case <-time.After(pause):
				pause = min(2*pause, 500*time.Millisecond)
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("open ssh session (%v): %w", err, ctx.Err())
			}
		}
		if reconnected {
			return nil, nil, fmt.Errorf("open ssh session: %w", err)
		}
		// The connection is broken even if its reader has not noticed yet.
		reconnected = true
		c.client.Close()
		<-c.dead
	}
}

// groupMarker starts the line on which the remote shell reports its
// process group, before the script's own output.
const groupMarker = "driftless-pgid:"

// groupWriter collects a session's standard output, taking apart what
// precedes the script's output: the process group line, and anything a
// login shell printed before it (a chatty .bashrc), which is discarded.
type groupWriter struct {
	mu      sync.Mutex
	pending []byte
	pgid    int
	seen    bool
	out     bytes.Buffer
}

func (w *groupWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for !w.seen {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			return n, nil
		}
		line := append(w.pending, p[:i]...)
		w.pending, p = nil, p[i+1:]
		if rest, ok := bytes.CutPrefix(line, []byte(groupMarker)); ok {
			w.seen = true
			w.pgid, _ = strconv.Atoi(string(rest))
		}
	}
	w.out.Write(p)
	return n, nil
}

// group is the remote process group, or 0 when it is not known (yet).
func (w *groupWriter) group() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pgid
}

func (w *groupWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.out.Bytes())
}
