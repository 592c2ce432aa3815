package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeClosesSlowAndIdleConnections runs the daemon with short HTTP
// limits and holds what an attacker would hold: a webhook request that
// announces a body and never sends it, an idle keep-alive connection, a
// connection that never finishes its headers, and more connections from
// one address than allowed. Each must be closed within its limit, and
// /healthz must still answer.
func TestServeClosesSlowAndIdleConnections(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secret, []byte("s3cret-hook"), 0o600); err != nil {
		t.Fatal(err)
	}
	const limit = 500 * time.Millisecond
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
webhooks: {github: {file: %q}}
http:
  read_header_timeout: %s
  body_timeout: %s
  idle_timeout: %s
  write_timeout: 5s
  scrape_timeout: 5s
  max_connections: 16
  max_connections_per_address: 4
`, filepath.Join(dir, "state"), secret, limit, limit, limit)
	addr := serveInProcess(t, dir, yaml)
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reads until the server closes c and fails when that
	// takes longer than max.
	closedWithin := func(t *testing.T, c net.Conn, max time.Duration) {
		t.Helper()
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(max + 5*time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection was still open after %s (limit %s)", time.Since(start).Round(time.Millisecond), max)
		}
		if took := time.Since(start); took > max {
			t.Fatalf("the connection was closed after %s, want within %s", took.Round(time.Millisecond), max)
		}
	}
	const slack = 1500 * time.Millisecond

	t.Run("body never sent", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
		closedWithin(t, c, limit+slack)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read /healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("/healthz: %s, close %v; want 200 on a kept-alive connection", resp.Status, resp.Close)
		}
		closedWithin(t, c, limit+slack)
	})
	t.Run("headers never finished", func(t *testing.T) {
		c := dial(t)
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
		closedWithin(t, c, limit+slack)
	})
	t.Run("too many from one address", func(t *testing.T) {
		// A request answered on each shows all four are in. The slots of
		// the connections of the subtests before are freed once the server
		// sees their close, a moment later: a refused one is dialled again.
		for range 4 {
			for try := 0; ; try++ {
				c := dial(t)
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					resp.Body.Close()
					break
				}
				c.Close()
				if try == 50 {
					t.Fatalf("read /healthz: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		closedWithin(t, dial(t), slack)
	})
	// The server frees a slot when it sees the client's close, a moment later.
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		resp *http.Response
		err  error
	)
	for try := 0; ; try++ {
		if resp, err = client.Get("http://" + addr + "/metrics"); err == nil {
			break
		}
		if try == 50 {
			t.Fatalf("/metrics after the held connections were closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `driftless_http_connections_refused_total{reason="address"} `) {
		t.Errorf("/metrics does not count the refused connection:\n%s", grepLines(string(body), "driftless_http"))
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
