package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/haproxy"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// TestTrafficDraining is issue 17's traffic acceptance: a real HAProxy in
// front of three systemd hosts serving HTTP, clients sending requests
// through it without pause, and rollouts that restart the service on every
// host. With `traffic: haproxy` no request fails and HAProxy's own stats
// show each server drained in turn; the same rollout without the hooks
// fails requests. A release failing its check on the first host keeps
// that host out of rotation while it is rolled back, then puts it back.
func TestTrafficDraining(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and boots three systemd hosts; skipped in -short")
	}
	if _, err := os.Stat("/usr/bin/systemd-nspawn"); err != nil {
		need.Missing(t, "end-to-end test needs systemd-nspawn (systemd-container), which is not installed")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	var hs []*hosts.Host
	backends := map[string]string{}
	var names []string
	for i := 1; i <= 3; i++ {
		h := lab.Kind2(fmt.Sprintf("app-%d", i))
		hs = append(hs, h)
		backends[h.Name] = h.Address + ":8080"
		names = append(names, h.Name)
	}
	lb := haproxy.Start(t, backends, names...)
	bin, appBin := buildBinaries(t, true)
	app, err := os.ReadFile(appBin)
	if err != nil {
		t.Fatal(err)
	}
	arts := newArtifactServer(t)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("e2e-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	v0 := work.Commit(t, map[string]string{"environments/prod.yaml": baseEnv(hs)}, "declare the hosts")
	work.Push(t)
	d := startDaemon(t, bin, daemonConfig(t, lab, repoURL, secret, time.Hour))
	hook.setTarget(d.URL)
	waitApplied(t, d, "prod", v0)

	release := func(version string, files map[string][]byte) (string, string) {
		all := map[string][]byte{"app": app, "version": []byte(version + "\n")}
		for k, v := range files {
			all[k] = v
		}
		return arts.add(t, "app-"+version+".tar.gz", all)
	}
	deploy := func(version string, withTraffic bool, files map[string][]byte) string {
		url, sum := release(version, files)
		c := work.Commit(t, map[string]string{"environments/prod.yaml": drainedAppEnv(hs, url, sum, lb.Socket, withTraffic)}, "deploy "+version)
		work.Push(t)
		if n := hook.check(t); n < 1 {
			t.Fatalf("no webhook delivered for %s", version)
		}
		return c
	}
	v1 := deploy("v1", true, nil)
	waitApplied(t, d, "prod", v1)

	t.Run("with haproxy hooks no request fails", func(t *testing.T) {
		load := startLoad(t, lb)
		v2 := deploy("v2", true, nil)
		waitApplied(t, d, "prod", v2)
		res := load.stop(t)
		t.Logf("%d requests through HAProxy during the rollout, %d failed; drains seen: %v", res.total, res.failed, res.drains)
		if res.failed != 0 || res.total < 100 {
			t.Errorf("%d of %d requests failed (first: %s), want 0 of at least 100", res.failed, res.total, res.firstErr)
		}
		if strings.Join(res.drains, " ") != "app-1 app-2 app-3" {
			t.Errorf("HAProxy showed the servers drained as %v, want app-1, app-2, app-3 one at a time", res.drains)
		}
		if res.overlap {
			t.Error("HAProxy showed two servers draining at once with batch 1")
		}
		if res.errors != 0 {
			t.Errorf("HAProxy counted %d connection/response errors or 5xx answers during the rollout", res.errors)
		}
		for _, h := range hs {
			requireServing(t, h, "v2")
		}
	})

	t.Run("without hooks requests fail", func(t *testing.T) {
		load := startLoad(t, lb)
		v3 := deploy("v3", false, nil)
		waitApplied(t, d, "prod", v3)
		res := load.stop(t)
		t.Logf("%d requests through HAProxy during the rollout without hooks, %d failed; drains seen: %v", res.total, res.failed, res.drains)
		if res.failed == 0 || res.errors == 0 {
			t.Errorf("no request failed (%d sent, HAProxy errors %d): the test could not tell the hooks' effect", res.total, res.errors)
		}
		if len(res.drains) != 0 {
			t.Errorf("servers drained without hooks: %v", res.drains)
		}
	})

	t.Run("a failing host stays out while rolled back", func(t *testing.T) {
		load := startLoad(t, lb)
		v4 := deploy("v4", true, map[string][]byte{"status": []byte("500\n")})
		waitFor(t, 2*time.Minute, 200*time.Millisecond, "v4 to be rolled back", func() error {
			st, err := d.env("prod")
			if err != nil {
				return err
			}
			if st.LastResult != "rolled_back" {
				return fmt.Errorf("state %q, last result %q", st.State, st.LastResult)
			}
			return nil
		})
		requireRun(t, d, "prod", v4, "rolled_back")
		// The host goes back in once its rollback is verified: wait for it
		// to leave DRAIN, with the load still running.
		waitFor(t, 30*time.Second, 50*time.Millisecond, "app-1 back in rotation", func() error {
			st, err := lb.Stats()
			if err != nil {
				return err
			}
			if st["app-1"].Status == "DRAIN" {
				return fmt.Errorf("app-1 is %s", st["app-1"].Status)
			}
			return nil
		})
		res := load.stop(t)
		t.Logf("%d requests through HAProxy during the failed rollout and its rollback, %d failed; drains seen: %v", res.total, res.failed, res.drains)
		if res.failed != 0 || res.errors != 0 {
			t.Errorf("%d of %d requests failed (first: %s), HAProxy errors %d; want none", res.failed, res.total, res.firstErr, res.errors)
		}
		if strings.Join(res.drains, " ") != "app-1" {
			t.Errorf("servers drained: %v, want app-1 only (the first batch fails)", res.drains)
		}
		for _, h := range hs {
			requireServing(t, h, "v3")
		}
	})
}

// drainedAppEnv is "prod" with the app restarted on every host at each
// release (its unit waits a second before it listens, as a real service
// warming up), one host per batch, and, with withTraffic, HAProxy's
// runtime API taking each host out around its apply.
func drainedAppEnv(hs []*hosts.Host, url, sum, socket string, withTraffic bool) string {
	var b strings.Builder
	b.WriteString("environment: prod\ndrift: enforce\nhosts:\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    roles: [app]\n", h.Name, h.Address)
	}
	fmt.Fprintf(&b, `roles:
  app:
    - artifact: /opt/app
      url: %s
      sha256: %s
      format: tar.gz
      notify: [service:app]
    - service: app
      state: running
      enabled: true
      requires: [artifact:/opt/app]
      unit: |
        [Unit]
        Description=driftless traffic test app
        [Service]
        ExecStartPre=/bin/sleep 1
        ExecStart=/opt/app/current/app -listen :8080
        [Install]
        WantedBy=multi-user.target
rollout: {batch: 1, max_failed: 0}
verify:
  - name: healthz
    http: "http://{{ .Host.Address }}:8080/healthz"
    timeout: 2s
    retries: 15
    interval: 300ms
`, url, sum)
	if withTraffic {
		fmt.Fprintf(&b, "traffic:\n  haproxy:\n    address: %s\n    backend: %s\n  drain_timeout: 20s\n", socket, haproxy.Backend)
	}
	return b.String()
}

// load is clients sending requests through HAProxy without pause, and a
// watcher of HAProxy's stats recording when each server drains.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	total  atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	first  string
	drains []string
	// overlap is set when two servers were seen in DRAIN at once.
	overlap bool
	lb      *haproxy.Server
	start   map[string]int
}

type loadResult struct {
	total, failed int64
	firstErr      string
	drains        []string
	overlap       bool
	// errors is the growth of HAProxy's connection and response errors
	// and 5xx answers over all servers while the load ran.
	errors int
}

func startLoad(t *testing.T, lb *haproxy.Server) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, lb: lb, start: haproxyErrors(t, lb)}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.URL+"/healthz", nil)
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				l.total.Add(1)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					if resp.StatusCode != http.StatusOK {
						msg = resp.Status
					}
					resp.Body.Close()
				}
				if msg != "" {
					l.failed.Add(1)
					l.mu.Lock()
					if l.first == "" {
						l.first = msg
					}
					l.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		draining := map[string]bool{}
		for ctx.Err() == nil {
			if st, err := lb.Stats(); err == nil {
				n := 0
				l.mu.Lock()
				for name, s := range st {
					if name == "BACKEND" {
						continue
					}
					now := s.Status == "DRAIN"
					if now {
						n++
					}
					if now && !draining[name] {
						l.drains = append(l.drains, name)
					}
					draining[name] = now
				}
				if n > 1 {
					l.overlap = true
				}
				l.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

func (l *load) stop(t *testing.T) loadResult {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	grown := 0
	for name, n := range haproxyErrors(t, l.lb) {
		grown += n - l.start[name]
	}
	return loadResult{total: l.total.Load(), failed: l.failed.Load(), firstErr: l.first, drains: l.drains, overlap: l.overlap, errors: grown}
}

// haproxyErrors reads each server's error and 5xx counters.
func haproxyErrors(t *testing.T, lb *haproxy.Server) map[string]int {
	t.Helper()
	st, err := lb.Stats()
	if err != nil {
		t.Fatalf("read HAProxy stats: %v", err)
	}
	out := map[string]int{}
	for name, s := range st {
		if name != "BACKEND" {
			out[name] = s.Errors + s.HTTP5xx
		}
	}
	return out
}
