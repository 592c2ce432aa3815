package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/driftless/driftless/targets"
)

// ErrGone is the error of a call on an agent whose session ended: the next
// call starts a new one.
var ErrGone = errors.New("agent session ended")

// Client is the daemon's end of one agent's session. Calls are made one
// at a time; a call whose context ends closes the session (the agent may
// be half-way through an answer), so a client is used until it is Gone.
type Client struct {
	mu     sync.Mutex
	w      io.Writer
	r      *bufio.Reader
	closer io.Closer
	next   uint64
	gone   bool
	hello  Hello
}

// NewClient speaks to an agent whose requests go to w and answers come
// from r; closer ends the session. It asks the agent who it is.
func NewClient(ctx context.Context, w io.Writer, r io.Reader, closer io.Closer) (*Client, error) {
	c := &Client{w: w, r: bufio.NewReaderSize(r, 64<<10), closer: closer}
	resp, err := c.call(ctx, Request{Op: OpHello})
	if err != nil {
		return nil, err
	}
	if resp.Hello == nil {
		c.Close()
		return nil, errors.New("agent hello: no answer")
	}
	c.hello = *resp.Hello
	if c.hello.Protocol != Protocol {
		c.Close()
		return nil, fmt.Errorf("agent speaks protocol %d, this daemon %d", c.hello.Protocol, Protocol)
	}
	return c, nil
}

// Hello is what the agent said about itself at the start.
func (c *Client) Hello() Hello { return c.hello }

// Gone says whether the session ended.
func (c *Client) Gone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gone
}

// Close ends the session.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = true
	return c.closer.Close()
}

// Observe asks the agent to observe a batch of resources.
func (c *Client) Observe(ctx context.Context, qs []targets.Query) ([]targets.Answer, error) {
	resp, err := c.call(ctx, Request{Op: OpObserve, Queries: qs})
	if err != nil {
		return nil, err
	}
	if len(resp.Answers) != len(qs) {
		return nil, fmt.Errorf("agent observe: %d answers to %d queries", len(resp.Answers), len(qs))
	}
	return resp.Answers, nil
}

// WriteFiles asks the agent to write files, as targets.Transport's
// WriteFiles: it returns how many are in place. An error of the session
// itself leaves the outcome unknown: n is 0 and callers treat every file
// as possibly written.
func (c *Client) WriteFiles(ctx context.Context, files []targets.FileWrite) (int, error) {
	ws := make([]Write, len(files))
	for i, f := range files {
		ws[i] = Write{Path: f.Path, Data: f.Data, Mode: uint32(f.Mode), Owner: f.Owner, Group: f.Group}
	}
	resp, err := c.call(ctx, Request{Op: OpWrite, Writes: ws, Fence: targets.HostFenceOf(ctx)})
	if err != nil {
		return 0, err
	}
	if resp.WriteErr != "" {
		return resp.Written, answerErr(resp.WriteErr, resp.Fenced)
	}
	return resp.Written, nil
}

// Apply asks the agent to apply, restore or refresh steps, as
// targets.NativeApplier's ApplyNative: it returns how many are done. An
// error of the session itself leaves the outcome unknown: n is 0 and
// callers treat every step as possibly done.
func (c *Client) Apply(ctx context.Context, steps []targets.Step) (int, error) {
	req := Request{Op: OpApply, Steps: steps, Fence: targets.HostFenceOf(ctx)}
	if d, ok := ctx.Deadline(); ok {
		req.TimeoutMS = max(time.Until(d).Milliseconds(), 1)
	}
	var archives []*io.SectionReader
	for i, s := range steps {
		if s.Archive == nil {
			continue
		}
		if req.Archives == nil {
			req.Archives = make([]int64, len(steps))
		}
		req.Archives[i] = s.Archive.Size()
		archives = append(archives, s.Archive)
	}
	resp, err := c.call(ctx, req, archives...)
	if err != nil {
		return 0, err
	}
	if resp.ApplyErr != "" {
		return resp.Applied, answerErr(resp.ApplyErr, resp.Fenced)
	}
	return resp.Applied, nil
}

// MarkFence asks the agent to record a fence event on the host, as
// targets.MarkHostFence.
func (c *Client) MarkFence(ctx context.Context, m targets.FenceMark) error {
	resp, err := c.call(ctx, Request{Op: OpFence, Mark: &m})
	if err != nil {
		return err
	}
	if resp.FenceErr != "" {
		return answerErr(resp.FenceErr, resp.Fenced)
	}
	return nil
}

// answerErr is the error an agent's answer reports; a refused fencing
// token is targets.ErrHostFenced.
func answerErr(msg string, fenced bool) error {
	if fenced {
		return fmt.Errorf("agent: %s: %w", msg, targets.ErrHostFenced)
	}
	return errors.New(msg)
}

// checkGrace is how long past a check's deadline the daemon waits for the
// agent's answer (the agent kills the check at the deadline).
const checkGrace = 5 * time.Second

// RunCheck runs a command check's script on the host through the agent
// and returns its exit status and stderr. The agent stops it at ctx's
// deadline.
func (c *Client) RunCheck(ctx context.Context, script string) (targets.Result, error) {
	chk := &Check{Script: script}
	callCtx := ctx
	if d, ok := ctx.Deadline(); ok {
		// The agent ends the check at the deadline and answers; the
		// session is given a grace beyond it, so that a check out of time
		// does not end the agent with it. A cancelled ctx still does.
		chk.TimeoutMS = max(time.Until(d).Milliseconds(), 1)
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(checkGrace))
		defer cancel()
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.Canceled) {
				cancel()
			}
		})
		defer stop()
	}
	resp, err := c.call(callCtx, Request{Op: OpCheck, Check: chk})
	if err != nil {
		return targets.Result{}, err
	}
	if resp.Check == nil {
		return targets.Result{}, errors.New("agent check: no answer")
	}
	res := targets.Result{Exit: resp.Check.Exit, Stderr: resp.Check.Stderr}
	if resp.Check.Err != "" {
		return res, fmt.Errorf("agent check: %s", resp.Check.Err)
	}
	return res, nil
}

// call sends one request, then the bytes of its archives, and reads its
// answer.
func (c *Client) call(ctx context.Context, req Request, archives ...*io.SectionReader) (Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return Response{}, ErrGone
	}
	c.next++
	req.ID = c.next
	line, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		if _, err := c.w.Write(append(line, '\n')); err != nil {
			done <- result{err: err}
			return
		}
		for _, a := range archives {
			if _, err := io.Copy(c.w, io.NewSectionReader(a, 0, a.Size())); err != nil {
				done <- result{err: err}
				return
			}
		}
		b, err := c.r.ReadBytes('\n')
		done <- result{b, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		c.gone = true
		c.closer.Close()
		<-done
		return Response{}, fmt.Errorf("agent %s: %w", req.Op, ctx.Err())
	}
	if res.err != nil {
		c.gone = true
		c.closer.Close()
		return Response{}, fmt.Errorf("agent %s: %w (%w)", req.Op, ErrGone, res.err)
	}
	var resp Response
	if err := json.Unmarshal(res.line, &resp); err != nil || resp.ID != req.ID {
		c.gone = true
		c.closer.Close()
		return Response{}, fmt.Errorf("agent %s: unreadable answer (id %d for %d): %v", req.Op, resp.ID, req.ID, err)
	}
	if resp.Err != "" {
		return Response{}, fmt.Errorf("agent %s: %s", req.Op, resp.Err)
	}
	return resp, nil
}
