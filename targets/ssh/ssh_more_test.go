package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

func TestSudo(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("sudo")
	if err := h.AddLogin("deploy", true); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		sudo bool
		want string
	}{{false, "1000"}, {true, "0"}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("sudo=%v", tt.sudo), func(t *testing.T) {
			tr := dial(t, lab, h, func(c *ssh.Config) { c.User, c.Sudo = "deploy", tt.sudo })
			res, err := tr.Run(ctx, "id -u; cat", []byte("in"))
			if err != nil || res.Exit != 0 || string(res.Stdout) != tt.want+"\nin" {
				t.Fatalf("id -u: %q exit %d stderr %q err %v, want %s", res.Stdout, res.Exit, res.Stderr, err, tt.want)
			}
			err = tr.WriteFile(ctx, "/etc/by-deploy", []byte("x"), 0o600)
			if tt.sudo && err != nil {
				t.Fatalf("write through sudo: %v", err)
			}
			if !tt.sudo && err == nil {
				t.Fatal("deploy wrote /etc without sudo")
			}
		})
	}
	if out := h.MustExec(t, "stat -c '%U %a' /etc/by-deploy"); out != "root 600\n" {
		t.Fatalf("file written through sudo: %q", out)
	}
	// A timed-out script run through sudo is killed too (as root, through sudo).
	tr := dial(t, lab, h, func(c *ssh.Config) { c.User, c.Sudo, c.Timeout = "deploy", true, 2*time.Second })
	if _, err := tr.Run(ctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a 30 s command under a 2 s timeout: %v", err)
	}
	if out := h.MustExec(t, "cat /proc/[0-9]*/comm | grep -c '^sleep$' || true"); out != "0\n" {
		t.Fatalf("%s sleep processes still run on the host after their timeout", strings.TrimSpace(out))
	}
}

func TestReconnectAndRedial(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("reconnect")
	tr := dial(t, lab, h, nil)
	ctx := context.Background()
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	// Kill every sshd process serving a connection: the connection drops
	// server-side while the listener (PID 1) stays.
	h.MustExec(t, `for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = 1 ] || [ "$p" = $$ ] || kill -9 "$p" 2>/dev/null; done; true`)
	res, err := tr.Run(ctx, "echo again", nil)
	if err != nil || string(res.Stdout) != "again\n" {
		t.Fatalf("run after the connection was killed: %q %v", res.Stdout, err)
	}

	var rd targets.Redialer = tr
	fresh, err := rd.Redial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	tr.Close()
	if _, err := tr.Run(ctx, "true", nil); !errors.Is(err, ssh.ErrClosed) {
		t.Fatalf("run on a closed transport: %v, want ErrClosed", err)
	}
	if res, err := fresh.Run(ctx, "hostname", nil); err != nil || string(res.Stdout) != "reconnect\n" {
		t.Fatalf("run on the redialled transport: %q %v", res.Stdout, err)
	}
}

func TestTimeout(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("timeout")
	tr := dial(t, lab, h, func(c *ssh.Config) { c.Timeout = 2 * time.Second })
	ctx := context.Background()
	_, err := tr.Run(ctx, "sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a 30 s command under a 2 s timeout: %v, want deadline exceeded", err)
	}
	// The caller's own, shorter deadline counts too.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := tr.Run(short, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
	// A caller's own, longer deadline lets a long operation finish.
	long, cancelLong := context.WithTimeout(ctx, time.Minute)
	defer cancelLong()
	if res, err := tr.Run(long, "sleep 3; echo done", nil); err != nil || string(res.Stdout) != "done\n" {
		t.Fatalf("a 3 s command under a caller's 1 min deadline: %q %v", res.Stdout, err)
	}
	// The transport is still usable after timeouts, and the timed-out
	// scripts were killed on the host, not left running.
	if res, err := tr.Run(ctx, "echo ok", nil); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("run after a timeout: %q %v", res.Stdout, err)
	}
	if out := h.MustExec(t, "cat /proc/[0-9]*/comm | grep -c '^sleep$' || true"); out != "0\n" {
		t.Fatalf("%s sleep processes still run on the host after their timeout", strings.TrimSpace(out))
	}
	// Nothing answers on a lab address without a host: the dial times out.
	_, err = ssh.Dial(ctx, ssh.Config{Address: fmt.Sprintf("10.77.%d.250", lab.N), KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Timeout: time.Second})
	if err == nil {
		t.Fatal("dial to an address without a host succeeded")
	}
}

func TestPool(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	var hs []*hosts.Host
	for i := range 3 {
		hs = append(hs, lab.Kind1(fmt.Sprintf("pool-%d", i)))
	}
	pool := ssh.NewPool(ssh.Config{KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile, Timeout: 20 * time.Second}, 0)
	defer pool.Close()
	ctx := context.Background()
	got := make([]string, len(hs))
	errs := ssh.ForEach(ctx, 2, hs, func(ctx context.Context, h *hosts.Host) error {
		tr, err := pool.Get(ctx, h.Name, ssh.Config{Address: h.Address})
		if err != nil {
			return err
		}
		res, err := tr.Run(ctx, "hostname", nil)
		for i := range hs {
			if hs[i] == h {
				got[i] = strings.TrimSpace(string(res.Stdout))
			}
		}
		return err
	})
	for i, err := range errs {
		if err != nil || got[i] != hs[i].Name {
			t.Fatalf("host %s: %q %v", hs[i].Name, got[i], err)
		}
	}
	a, err := pool.Get(ctx, hs[0].Name, ssh.Config{Address: hs[0].Address})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pool.Get(ctx, hs[0].Name, ssh.Config{Address: hs[0].Address})
	if a != b || a.RoundTrips() != 1 {
		t.Fatalf("pool did not reuse the connection (same=%v, round trips %d)", a == b, a.RoundTrips())
	}
	// New settings for the same key (a pinned key now): a new connection,
	// and the old one is closed.
	c, err := pool.Get(ctx, hs[0].Name, ssh.Config{Address: hs[0].Address, PinnedKey: hs[0].AuthorizedKey()})
	if err != nil || c == a {
		t.Fatalf("Get with new settings: same=%v %v", c == a, err)
	}
	if _, err := a.Run(ctx, "true", nil); !errors.Is(err, ssh.ErrClosed) {
		t.Fatalf("replaced transport still usable: %v", err)
	}
	a = c
	pool.Close()
	if _, err := a.Run(ctx, "true", nil); !errors.Is(err, ssh.ErrClosed) {
		t.Fatalf("pooled transport after Close: %v", err)
	}
	// A failing host reports its own error and does not stop the others.
	errs = ssh.ForEach(ctx, 0, []int{1, 2, 3}, func(_ context.Context, i int) error {
		if i == 2 {
			return errors.New("two")
		}
		return nil
	})
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("ForEach errors: %v", errs)
	}
}
