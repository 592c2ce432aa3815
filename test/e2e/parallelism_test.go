package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
)

// connCounter is a TCP relay on loopback in front of one host's sshd. All
// the relays of a test share one counter of the connections open at once.
type connCounter struct {
	mu        sync.Mutex
	open, max int
	total     int
}

func (c *connCounter) opened() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
	c.total++
	c.max = max(c.max, c.open)
}

func (c *connCounter) closed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
}

func (c *connCounter) peak() (peak, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max, c.total
}

// relay listens on 127.0.0.1 and forwards every connection to target,
// counting it in c while both directions are open. It stops with the test.
func (c *connCounter) relay(t *testing.T, target string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				// The daemon closes an idle connection before it dials the
				// next one, but the relay's goroutine may notice that close
				// after it accepted the new connection: the new one counts
				// only once a close already sent has had time to be seen.
				// A connection really kept open stays open far longer.
				time.Sleep(20 * time.Millisecond)
				c.opened()
				defer c.closed()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
				<-done
				// One side ended: end the other, then wait for its copy.
				in.Close()
				out.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSSHParallelismOverAllEnvironments: ssh.parallelism bounds the SSH
// connections open at once over all environments. Three environments of
// four hosts each reconcile at once with parallelism 3; every connection
// passes through a relay that counts those open at the same time, which
// must never exceed 3, and every host still converges.
func TestSSHParallelismOverAllEnvironments(t *testing.T) {
	const envs, perEnv, parallelism = 3, 4, 3
	lab := hosts.NewLab(t, hosts.Options{})
	var counter connCounter
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	files := map[string]string{}
	var all []*hosts.Host
	for e := range envs {
		var b strings.Builder
		fmt.Fprintf(&b, "environment: env-%d\ndrift: enforce\nhosts:\n", e)
		for i := range perEnv {
			h := lab.Kind1(fmt.Sprintf("par-%d-%d", e, i))
			all = append(all, h)
			port := counter.relay(t, net.JoinHostPort(h.Address, "22"))
			fmt.Fprintf(&b, "  - name: %s\n    address: 127.0.0.1\n    port: %d\n    host_key: %s\n    roles: [par]\n",
				h.Name, port, strconv.Quote(h.AuthorizedKey()))
		}
		b.WriteString("roles:\n  par:\n    - directory: /etc/par\n      mode: \"0755\"\n")
		for f := range 3 {
			fmt.Fprintf(&b, "    - file: /etc/par/f%d.conf\n      content: \"env %d\\n\"\n      requires: [directory:/etc/par]\n", f, e)
		}
		fmt.Fprintf(&b, "rollout: {batch: %d, max_failed: 0}\n", perEnv)
		files[fmt.Sprintf("environments/env-%d.yaml", e)] = b.String()
	}
	commit := work.Commit(t, files, "three environments")
	work.Push(t)

	cfg := daemonConfig(t, lab, repoURL, []byte("unused-secret"), time.Hour)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), "parallelism: 20", fmt.Sprintf("parallelism: %d", parallelism), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, _ := buildBinaries(t, false)
	d := startDaemon(t, bin, cfg)
	for e := range envs {
		waitApplied(t, d, fmt.Sprintf("env-%d", e), commit)
	}
	for i, h := range all {
		for f := range 3 {
			got, err := os.ReadFile(filepath.Join(h.Root, fmt.Sprintf("etc/par/f%d.conf", f)))
			if want := fmt.Sprintf("env %d\n", i/perEnv); err != nil || string(got) != want {
				t.Errorf("%s: f%d.conf = %q (%v), want %q", h.Name, f, got, err, want)
			}
		}
	}
	peak, total := counter.peak()
	t.Logf("%d SSH connections in all, at most %d open at once", total, peak)
	if total < envs*perEnv {
		t.Errorf("%d connections for %d hosts: the relays were bypassed", total, envs*perEnv)
	}
	if peak > parallelism {
		t.Errorf("%d SSH connections were open at once over %d environments, want at most ssh.parallelism = %d", peak, envs, parallelism)
	}
}
