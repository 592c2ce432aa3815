// Package haproxy starts a real HAProxy (Debian's haproxy) for tests: an
// HTTP frontend on a free loopback port in front of one backend, with its
// runtime API on a Unix socket at level admin. Tests skip (fail in strict
// mode) when the haproxy binary is not installed.
package haproxy

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/syncbuf"
)

// Backend is the name of the one backend.
const Backend = "app"

// Server is a running HAProxy.
type Server struct {
	// URL is the frontend ("http://127.0.0.1:PORT").
	URL string
	// Socket is the runtime API's Unix socket.
	Socket string
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
}

// Start starts HAProxy with servers (name → "ip:port") in backend "app",
// round robin, without health checks (so that only the runtime API takes a
// server out) and without retries, and returns once its frontend accepts connections. It is
// stopped when t ends.
func Start(t testing.TB, servers map[string]string, names ...string) *Server {
	t.Helper()
	bin := need.Tools(t, "the traffic-draining test (a real HAProxy)", "haproxy")
	dir := t.TempDir()
	s := &Server{Socket: filepath.Join(dir, "admin.sock"), log: &syncbuf.Buffer{}}
	port, err := freePort()
	if err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `global
  stats socket %s mode 600 level admin
  maxconn 2000
defaults
  mode http
  # No retry: a request sent to a server that is down fails, instead of
  # being retried a second later and hiding the outage from the test.
  retries 0
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:%d
  default_backend %s
backend %s
  balance roundrobin
`, s.Socket, port, Backend, Backend)
	for _, n := range names {
		fmt.Fprintf(&b, "  server %s %s\n", n, servers[n])
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("haproxy: write config: %v", err)
	}
	s.cmd = exec.Command(bin, "-db", "-f", cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("haproxy: start: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			_ = c.Close()
			if _, err := os.Stat(s.Socket); err == nil {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited at start:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not listen within 10s:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what HAProxy printed.
func (s *Server) Log() string { return s.log.String() }

// Stat is one server's line of `show stat`.
type Stat struct {
	Status string
	// Sessions is scur; Total is stot; Errors counts connection and
	// response errors (econ + eresp).
	Sessions, Total, Errors int
	// HTTP5xx counts 5xx answers from the server (hrsp_5xx).
	HTTP5xx int
}

// Stats reads the backend's servers, and the backend's own line under
// "BACKEND", from the runtime API's `show stat`.
func (s *Server) Stats() (map[string]Stat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.Socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("parse show stat: %v (%q)", err, b)
	}
	col := map[string]int{}
	for i, n := range recs[0] {
		col[n] = i
	}
	num := func(rec []string, name string) int { n, _ := strconv.Atoi(rec[col[name]]); return n }
	out := map[string]Stat{}
	for _, rec := range recs[1:] {
		if len(rec) < len(recs[0]) || rec[col["pxname"]] != Backend {
			continue
		}
		out[rec[col["svname"]]] = Stat{Status: rec[col["status"]], Sessions: num(rec, "scur"), Total: num(rec, "stot"),
			Errors: num(rec, "econ") + num(rec, "eresp"), HTTP5xx: num(rec, "hrsp_5xx")}
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
