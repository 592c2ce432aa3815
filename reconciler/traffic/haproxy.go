package traffic

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
)

// HAProxy drains and readies servers through HAProxy's runtime API (a
// `stats socket` at level admin), one connection per command.
type HAProxy struct {
	cfg  config.HAProxyTraffic
	poll time.Duration
}

var _ Balancer = (*HAProxy)(nil)

// commandTimeout bounds one runtime API command when the caller's context
// has no earlier deadline.
const commandTimeout = 5 * time.Second

// Out sets the host's server to drain, then waits until its current
// sessions and queue are 0, or until ctx ends (ErrNotDrained).
func (p *HAProxy) Out(ctx context.Context, _ string, h *config.Host) error {
	server := p.cfg.Server(h.Name)
	if err := p.setState(ctx, server, "drain"); err != nil {
		return err
	}
	for {
		st, err := p.Stat(ctx, server)
		if err != nil {
			// A read cut by the deadline may end a moment before ctx
			// says so: both mean the time to drain ran out.
			var ne net.Error
			if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
				return fmt.Errorf("drain %s/%s: %w: %w", p.cfg.Backend, server, ErrNotDrained, err)
			}
			return err
		}
		if st.Sessions == 0 && st.Queued == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s/%s: %d session(s) left: %w", p.cfg.Backend, server, st.Sessions, ErrNotDrained)
		case <-time.After(p.poll):
		}
	}
}

// In sets the host's server back to ready.
func (p *HAProxy) In(ctx context.Context, _ string, h *config.Host) error {
	return p.setState(ctx, p.cfg.Server(h.Name), "ready")
}

func (p *HAProxy) setState(ctx context.Context, server, state string) error {
	out, err := p.Command(ctx, fmt.Sprintf("set server %s/%s state %s", p.cfg.Backend, server, state))
	if err != nil {
		return err
	}
	// The command answers nothing when it worked, and says why otherwise.
	if msg := strings.TrimSpace(out); msg != "" {
		return fmt.Errorf("haproxy: set server %s/%s state %s: %s", p.cfg.Backend, server, state, msg)
	}
	return nil
}

// ServerStat is one server's line of `show stat`.
type ServerStat struct {
	// Status is HAProxy's: UP, DOWN, DRAIN, MAINT, "UP 1/3"...
	Status   string
	Sessions int
	Queued   int
}

// Stat reads one server of the backend from `show stat`.
func (p *HAProxy) Stat(ctx context.Context, server string) (ServerStat, error) {
	all, err := p.Stats(ctx)
	if err != nil {
		return ServerStat{}, err
	}
	st, ok := all[server]
	if !ok {
		return ServerStat{}, fmt.Errorf("haproxy: no server %s in backend %s", server, p.cfg.Backend)
	}
	return st, nil
}

// Stats reads every server of the backend from `show stat`.
func (p *HAProxy) Stats(ctx context.Context) (map[string]ServerStat, error) {
	out, err := p.Command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	return parseStat(out, p.cfg.Backend)
}

// parseStat reads the servers of backend from `show stat`'s CSV, whose
// first line names the columns ("# pxname,svname,qcur,qmax,scur,...").
func parseStat(out, backend string) (map[string]ServerStat, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("haproxy: read show stat header: %w", err)
	}
	col := map[string]int{}
	for i, n := range head {
		col[n] = i
	}
	for _, n := range []string{"pxname", "svname", "qcur", "scur", "status"} {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("haproxy: show stat has no %s column (got %q)", n, firstLine(out))
		}
	}
	servers := map[string]ServerStat{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return servers, nil
		}
		if err != nil {
			return nil, fmt.Errorf("haproxy: read show stat: %w", err)
		}
		if len(rec) < len(head) || rec[col["pxname"]] != backend {
			continue
		}
		name := rec[col["svname"]]
		if name == "FRONTEND" || name == "BACKEND" {
			continue
		}
		scur, _ := strconv.Atoi(rec[col["scur"]])
		qcur, _ := strconv.Atoi(rec[col["qcur"]])
		servers[name] = ServerStat{Status: rec[col["status"]], Sessions: scur, Queued: qcur}
	}
}

// Command sends one line to the runtime API and returns its answer (the
// API closes the connection after answering a non-interactive command).
func (p *HAProxy) Command(ctx context.Context, line string) (string, error) {
	network := "tcp"
	if path.IsAbs(p.cfg.Address) {
		network = "unix"
	}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(cctx, network, p.cfg.Address)
	if err != nil {
		return "", fmt.Errorf("haproxy: connect to the runtime API %s: %w", p.cfg.Address, err)
	}
	defer c.Close()
	if dl, ok := cctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: send %q: %w", line, err)
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(c), 8<<20))
	if err != nil {
		return "", fmt.Errorf("haproxy: read the answer to %q: %w", line, err)
	}
	return string(b), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
