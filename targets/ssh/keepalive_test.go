package ssh_test

import (
	"bufio"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

// establishedTo counts this machine's root-namespace TCP connections to
// addr port 22 in state ESTABLISHED, read from /proc/net/tcp.
func establishedTo(t *testing.T, addr string) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := net.ParseIP(addr).To4()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "01" {
			continue
		}
		ip, port, ok := strings.Cut(fields[2], ":")
		b, err := hex.DecodeString(ip)
		if !ok || err != nil || len(b) != 4 || port != "0016" {
			continue
		}
		// The kernel prints the address in host byte order (little endian here).
		if net.IPv4(b[3], b[2], b[1], b[0]).Equal(want) {
			n++
		}
	}
	return n
}

// TestKeepalive leaves a connection idle: with a healthy peer the
// keepalives keep it (one login, still one connection after many
// intervals); with a frozen peer the keepalive notices, without any
// command being run, and drops the connection so that the next operation
// reconnects instead of hanging.
func TestKeepalive(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("keepalive")
	tr := dial(t, lab, h, func(c *ssh.Config) { c.Keepalive, c.Timeout = 200*time.Millisecond, 2*time.Second })
	ctx := t.Context()
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // ten keepalive intervals, idle
	if n := establishedTo(t, h.Address); n != 1 {
		t.Fatalf("%d connections to %s after an idle spell with a healthy peer, want 1", n, h.Address)
	}
	if res, err := tr.Run(ctx, "echo still", nil); err != nil || string(res.Stdout) != "still\n" {
		t.Fatalf("run after an idle spell: %q %v", res.Stdout, err)
	}
	if log, _ := os.ReadFile(h.LogFile()); strings.Count(string(log), "Accepted publickey") != 1 {
		t.Fatalf("an idle connection was replaced; want exactly one login:\n%s", log)
	}

	// Freeze every process of the host but its init: the TCP connection
	// stays up, nothing answers the keepalives.
	h.MustExec(t, `for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = 1 ] || [ "$p" = $$ ] || kill -STOP "$p" 2>/dev/null; done; true`)
	deadline := time.Now().Add(30 * time.Second)
	for establishedTo(t, h.Address) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection to a frozen peer is still open: keepalives did not notice")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
