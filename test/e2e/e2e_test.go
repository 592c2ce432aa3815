package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// driftInterval is the daemon's drift interval in the end-to-end test:
// short, so that drift is seen and healed within seconds.
const driftInterval = 2 * time.Second

// TestDeployRollbackDrift is issue 5's acceptance: the built daemon deploys
// a service to three systemd hosts from Git, rolls a failing release back
// on its own and keeps it out, heals drift where the mode is enforce and
// only reports it where the mode is warn.
func TestDeployRollbackDrift(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and boots three systemd hosts; skipped in -short")
	}
	if _, err := os.Stat("/usr/bin/systemd-nspawn"); err != nil {
		need.Missing(t, "end-to-end test needs systemd-nspawn (systemd-container), which is not installed")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	var hs []*hosts.Host
	for i := 1; i <= 3; i++ {
		hs = append(hs, lab.Kind2(fmt.Sprintf("app-%d", i)))
	}
	bin, appBin := buildBinaries(t, true)
	app, err := os.ReadFile(appBin)
	if err != nil {
		t.Fatalf("read app binary: %v", err)
	}
	arts := newArtifactServer(t)
	url1, sum1 := arts.add(t, "app-v1.tar.gz", map[string][]byte{"app": app, "version": []byte("v1\n")})
	var v1 string
	url2, sum2 := arts.add(t, "app-v2.tar.gz", map[string][]byte{"app": app, "version": []byte("v2\n"), "status": []byte("500\n")})

	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("e2e-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	// The daemon starts on a commit that only declares the hosts and a
	// folder, so that v1 too arrives through a push and its webhook.
	v0 := work.Commit(t, map[string]string{"environments/prod.yaml": baseEnv(hs)}, "declare the hosts")
	work.Push(t)

	d := startDaemon(t, bin, daemonConfig(t, lab, repoURL, secret, driftInterval))
	hook.setTarget(d.URL)
	waitApplied(t, d, "prod", v0)

	t.Run("v1 deployed and verified", func(t *testing.T) {
		v1 = work.Commit(t, map[string]string{"environments/prod.yaml": appEnv(hs, url1, sum1)}, "deploy app v1")
		work.Push(t)
		if n := hook.check(t); n != 1 {
			t.Fatalf("%d webhooks delivered after the push of v1, want 1", n)
		}
		waitApplied(t, d, "prod", v1)
		requireRun(t, d, "prod", v1, "success")
		requireMetricAtLeast(t, d, "driftless_verification_total", map[string]string{"environment": "prod", "check": "healthz", "result": "pass"}, float64(len(hs)))
		for _, h := range hs {
			requireServing(t, h, "v1")
		}
	})
	if t.Failed() {
		return
	}

	t.Run("failing v2 rolled back and quarantined", func(t *testing.T) {
		v2 := work.Commit(t, map[string]string{"environments/prod.yaml": appEnv(hs, url2, sum2)}, "deploy app v2 (fails its health check)")
		work.Push(t)
		if n := hook.check(t); n < 1 {
			t.Fatalf("no webhook was delivered for the push of v2")
		}
		waitFor(t, 2*time.Minute, 200*time.Millisecond, "v2 to be quarantined", func() error {
			st, err := d.env("prod")
			if err != nil {
				return err
			}
			if !slices.Contains(st.Quarantined, v2) || st.State == "rolling_back" {
				return fmt.Errorf("state %q, quarantined %v, last result %q", st.State, st.Quarantined, st.LastResult)
			}
			return nil
		})
		st, err := d.env("prod")
		if err != nil {
			t.Fatal(err)
		}
		if st.LastGood != v1 {
			t.Errorf("last good revision is %q, want v1 %s", st.LastGood, v1)
		}
		requireRun(t, d, "prod", v2, "rolled_back")
		// The rollback must be the health check's doing, not an apply error.
		requireMetricAtLeast(t, d, "driftless_rollbacks_total", map[string]string{"environment": "prod", "reason": "verify"}, 1)
		requireMetricAtLeast(t, d, "driftless_verification_total", map[string]string{"environment": "prod", "check": "healthz", "result": "fail"}, 1)
		requireMetricAtLeast(t, d, "driftless_reconcile_total", map[string]string{"environment": "prod", "result": "rolled_back"}, 1)
		for _, h := range hs {
			requireServing(t, h, "v1")
			requireRelease(t, h, sum1)
		}

		// The drift loop compares the hosts with the last applied revision;
		// it must not bring the quarantined v2 back: no new run of v2, no
		// new rollback, v1 still served.
		runsBefore := runsOf(t, d, "prod", v2)
		rollbacks, _, err := d.metric("driftless_rollbacks_total", map[string]string{"environment": "prod"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*driftInterval + time.Second)
		for _, h := range hs {
			requireServing(t, h, "v1")
			requireRelease(t, h, sum1)
		}
		if after := runsOf(t, d, "prod", v2); after != runsBefore {
			t.Errorf("runs of quarantined v2 went from %d to %d over two drift intervals", runsBefore, after)
		}
		if after, _, err := d.metric("driftless_rollbacks_total", map[string]string{"environment": "prod"}); err != nil || after != rollbacks {
			t.Errorf("driftless_rollbacks_total went from %v to %v (%v) over two drift intervals", rollbacks, after, err)
		}
	})

	t.Run("drift healed where enforced, reported where warned", func(t *testing.T) {
		h := hs[1]
		h.MustExec(t, "echo edited by hand > /etc/app/enforced.conf && echo edited by hand > /etc/app/watched.conf")
		enforced := filepath.Join(h.Root, "etc/app/enforced.conf")
		watched := filepath.Join(h.Root, "etc/app/watched.conf")
		edited := time.Now()
		// Healing must come with the next drift pass: one interval, plus the
		// pass itself on a machine that may be busy compiling.
		waitFor(t, driftInterval+8*time.Second, 100*time.Millisecond, "the enforced file to be healed", func() error {
			b, err := os.ReadFile(enforced)
			if err != nil {
				return err
			}
			if string(b) != "managed by driftless\n" {
				return fmt.Errorf("enforced.conf is %q", b)
			}
			return nil
		})
		t.Logf("enforced file healed %s after the edit (drift interval %s)", time.Since(edited).Round(time.Millisecond), driftInterval)
		waitFor(t, driftInterval+8*time.Second, 200*time.Millisecond, "warn-mode drift in /metrics", func() error {
			v, found, err := d.metric("driftless_drift_resources", map[string]string{"environment": "prod", "host": h.Name, "mode": "warn"})
			if err != nil {
				return err
			}
			if !found || v <= 0 {
				return fmt.Errorf("driftless_drift_resources{host=%q,mode=\"warn\"} is %v (found %v)", h.Name, v, found)
			}
			return nil
		})
		// One more drift pass must leave the watched file as edited.
		time.Sleep(driftInterval + time.Second)
		b, err := os.ReadFile(watched)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "edited by hand\n" {
			t.Errorf("warn-mode file was changed by the drift loop: %q", b)
		}
		for _, other := range []*hosts.Host{hs[0], hs[2]} {
			b, err := os.ReadFile(filepath.Join(other.Root, "etc/app/watched.conf"))
			if err != nil || string(b) != "watched by driftless\n" {
				t.Errorf("watched.conf on %s: %q, %v", other.Name, b, err)
			}
		}
		requireServing(t, h, "v1")
	})

	t.Run("forged webhook refused, newer commit deployed after the quarantine", func(t *testing.T) {
		// The push is made with deliveries paused, so that only the
		// webhooks sent by hand below can tell the daemon about it.
		hook.setTarget("")
		v3 := work.Commit(t, map[string]string{"environments/prod.yaml": strings.Replace(appEnv(hs, url1, sum1),
			"managed by driftless", "managed by driftless, v3", 1)}, "v3: change a managed file")
		work.Push(t)
		ev := gitserver.PushEvent{Repo: "infra", Ref: "refs/heads/main", Before: work.Git(t, "rev-parse", "HEAD~1"), After: v3}
		err := hook.deliver(d.URL, ev, []byte("not-the-secret"))
		var se *hookStatusError
		if !errors.As(err, &se) || se.code != http.StatusUnauthorized {
			t.Fatalf("a webhook signed with the wrong secret got %v, want status 401", err)
		}
		requireMetricAtLeast(t, d, "driftless_webhook_requests_total", map[string]string{"provider": "github", "result": "unauthorized"}, 1)
		time.Sleep(2 * time.Second)
		if st, err := d.env("prod"); err != nil || st.Applied == v3 {
			t.Fatalf("after a forged webhook the environment applied %q (%v); want it untouched", st.Applied, err)
		}
		if err := hook.deliver(d.URL, ev, secret); err != nil {
			t.Fatalf("deliver the signed webhook of v3: %v", err)
		}
		waitApplied(t, d, "prod", v3)
		for _, h := range hs {
			b, err := os.ReadFile(filepath.Join(h.Root, "etc/app/enforced.conf"))
			if err != nil || string(b) != "managed by driftless, v3\n" {
				t.Errorf("enforced.conf on %s after v3: %q, %v", h.Name, b, err)
			}
			requireServing(t, h, "v1")
		}
	})
	hook.check(t)
}
