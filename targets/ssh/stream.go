package ssh

import (
	"context"
	"fmt"
	"io"

	gossh "golang.org/x/crypto/ssh"
)

// Stream is a script started on the host whose standard input and output
// stay open after the script itself was sent: the session of a long-lived
// program the script execs (the driftless agent).
type Stream struct {
	sess *gossh.Session
	// Stdin is what follows the script on the session's standard input.
	Stdin io.WriteCloser
	// Stdout is the session's standard output.
	Stdout io.Reader
}

// Close ends the session; the remote program sees its input end.
func (s *Stream) Close() error {
	s.Stdin.Close()
	return s.sess.Close()
}

// Start starts script on the host as Run does (sent on the session's
// standard input, wrapped so that a truncated transfer runs nothing) and
// returns the open session. The session holds no slot of the transport's
// session limit and does not keep the connection busy: it lives as long as
// the connection, and a connection closed as idle ends it.
func (t *Transport) Start(ctx context.Context, script string) (*Stream, error) {
	t.enter()
	defer t.leave()
	ctx, cancel := t.bound(ctx)
	defer cancel()
	sess, c, err := t.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("start on %s: %w", t.cfg.Address, err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start on %s: open remote stdin: %w", t.cfg.Address, err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start on %s: open remote stdout: %w", t.cfg.Address, err)
	}
	body := wrapScript(script)
	t.roundTrips.Add(1)
	stop := context.AfterFunc(ctx, func() { c.client.Close() })
	err = sess.Start(t.remoteCommand(len(body)))
	stop()
	if err == nil {
		_, err = in.Write(body)
	}
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start on %s: %w", t.cfg.Address, err)
	}
	return &Stream{sess: sess, Stdin: in, Stdout: out}, nil
}
