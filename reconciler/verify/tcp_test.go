package verify

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// closedPort returns a loopback address where nothing listens: a port
// the kernel just handed out and that was closed again.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { l.Close(); <-accepted }()

	for _, tc := range []struct {
		name     string
		addr     string
		ok       bool
		attempts int
		reason   string
	}{
		{"open port", l.Addr().String(), true, 1, "connected to " + l.Addr().String()},
		{"closed port", closedPort(t), false, 2, "connection refused"},
		{"no port", "127.0.0.1", false, 0, "invalid tcp check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRunner(t)
			res := r.Check(context.Background(), config.Check{TCP: tc.addr, Retries: 1}, &config.Host{Name: "db-1"}, nil)
			if res.OK != tc.ok || res.Attempts != tc.attempts || res.Check != "tcp:"+tc.addr {
				t.Fatalf("got %+v, want ok=%v attempts=%d", res, tc.ok, tc.attempts)
			}
			if !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", res.Reason, tc.reason)
			}
		})
	}
}
