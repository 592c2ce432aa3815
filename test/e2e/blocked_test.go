package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// lostHostEnv declares "prod" on hs in batches of one: a file that changes
// between revisions, one that is enforced and one that is only watched.
// checks is the verify section ("" for none).
func lostHostEnv(hs []*hosts.Host, version, checks string) string {
	var b strings.Builder
	b.WriteString("environment: prod\ndrift: enforce\nhosts:\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    roles: [app]\n", h.Name, h.Address)
	}
	fmt.Fprintf(&b, `roles:
  app:
    - directory: /etc/app
      mode: "0755"
    - file: /etc/app/version.conf
      content: "%s\n"
      mode: "0644"
      requires: [directory:/etc/app]
    - file: /etc/app/enforced.conf
      content: "managed\n"
      mode: "0644"
      requires: [directory:/etc/app]
    - file: /etc/app/watched.conf
      content: "watched\n"
      mode: "0644"
      drift: warn
      requires: [directory:/etc/app]
rollout: {batch: 1, max_failed: 0}
%s`, version, checks)
	return b.String()
}

// pollingConfig writes driftless.yaml for one Git source polled every
// second and the SSH hosts of lab, with short SSH timeouts so that a lost
// host is noticed within seconds.
func pollingConfig(t testing.TB, lab *hosts.Lab, repoURL string, drift time.Duration, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
drift_interval: %s
sources:
  - name: infra
    git:
      url: %s
      branch: main
      interval: 1s
ssh:
  user: root
  key_file: %s
  known_hosts: %s
  timeout: 3s
  keepalive_seconds: 1
  parallelism: 20
%s`, filepath.Join(dir, "state"), drift, repoURL, lab.ClientKeyFile, lab.KnownHostsFile, extra)
	return writeFile(t, dir, "driftless.yaml", cfg, 0o644)
}

// TestHostLostDuringRollout is issue 19's host-lost scenario: three hosts
// in batches of one, the second host's link taken down while its batch is
// verified. The rollback restores the first host and cannot reach the
// second: the environment is blocked, the lost host's series says 0, and
// the reachable hosts are still watched (a hand edit is corrected and
// reported). When the link is back, the rollback finishes and history says
// so, once.
func TestHostLostDuringRollout(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts three SSH hosts; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	var hs []*hosts.Host
	for i := 1; i <= 3; i++ {
		hs = append(hs, lab.Kind1(fmt.Sprintf("lost-%d", i)))
	}
	bin, _ := buildBinaries(t, false)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	v1 := work.Commit(t, map[string]string{"environments/prod.yaml": lostHostEnv(hs, "v1", "")}, "v1")
	work.Push(t)
	d := startDaemon(t, bin, pollingConfig(t, lab, repoURL, 2*time.Second, ""))
	waitApplied(t, d, "prod", v1)

	// v2 is verified by a check that takes three seconds: the window in
	// which the second host loses its link, once its file is written.
	v2 := work.Commit(t, map[string]string{"environments/prod.yaml": lostHostEnv(hs, "v2",
		"verify:\n  - name: settle\n    command: \"sleep 3\"\n    timeout: 20s\n")}, "v2")
	work.Push(t)
	lost := hs[1]
	restoreLink := loseLinkAtV2(t, lost)

	t.Run("blocked while the host is lost", func(t *testing.T) {
		waitFor(t, time.Minute, 200*time.Millisecond, "prod to be blocked", func() error {
			st, err := d.env("prod")
			if err != nil {
				return err
			}
			if st.State != "blocked" {
				return fmt.Errorf("state %q, last result %q, last error %q", st.State, st.LastResult, st.LastError)
			}
			return nil
		})
		if b, _ := os.ReadFile(filepath.Join(hs[0].Root, "etc/app/version.conf")); string(b) != "v1\n" {
			t.Errorf("the first host was not restored: version.conf %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(hs[2].Root, "etc/app/version.conf")); string(b) != "v1\n" {
			t.Errorf("the third host was touched: version.conf %q", b)
		}
		requireGauge(t, d, "driftless_environment_blocked", map[string]string{"environment": "prod"}, 1)
		waitFor(t, 30*time.Second, 200*time.Millisecond, "the lost host's series to say 0", func() error {
			return gaugeIs(d, "driftless_host_up", map[string]string{"environment": "prod", "host": lost.Name}, 0)
		})
		// From now on, over several drift passes, the lost host's series
		// stays 0 and the others' stay 1: polled every 100 ms, never absent.
		reachable := hs[2]
		reachable.MustExec(t, "echo edited by hand > /etc/app/enforced.conf && echo edited by hand > /etc/app/watched.conf")
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			for _, h := range hs {
				want := 1.0
				if h == lost {
					want = 0
				}
				if err := gaugeIs(d, "driftless_host_up", map[string]string{"environment": "prod", "host": h.Name}, want); err != nil {
					t.Fatal(err)
				}
			}
			if err := gaugeIs(d, "driftless_environment_blocked", map[string]string{"environment": "prod"}, 1); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The hand edits on a reachable host: the enforced file is put
		// back (by a drift pass while still blocked: the link stays down
		// until the next subtest), the watched one reported.
		waitFor(t, 30*time.Second, 200*time.Millisecond, "enforced.conf on the reachable host corrected while prod is blocked", func() error {
			if b, _ := os.ReadFile(filepath.Join(reachable.Root, "etc/app/enforced.conf")); string(b) != "managed\n" {
				return fmt.Errorf("enforced.conf on %s is %q", reachable.Name, b)
			}
			return gaugeIs(d, "driftless_environment_blocked", map[string]string{"environment": "prod"}, 1)
		})
		requireGauge(t, d, "driftless_drift_resources", map[string]string{"environment": "prod", "host": reachable.Name, "mode": "warn"}, 1)
		if st, err := d.env("prod"); err != nil || st.State != "blocked" || st.DriftResources < 1 {
			t.Errorf("status while blocked: %+v, %v", st, err)
		}
	})

	t.Run("rollback finished once the host is back", func(t *testing.T) {
		if err := restoreLink(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, 200*time.Millisecond, "prod to leave blocked", func() error {
			st, err := d.env("prod")
			if err != nil {
				return err
			}
			if st.State == "blocked" || st.State == "rolling_back" {
				return fmt.Errorf("state %q, last error %q", st.State, st.LastError)
			}
			return nil
		})
		if b, _ := os.ReadFile(filepath.Join(lost.Root, "etc/app/version.conf")); string(b) != "v1\n" {
			t.Errorf("the lost host was not restored: version.conf %q", b)
		}
		requireGauge(t, d, "driftless_environment_blocked", map[string]string{"environment": "prod"}, 0)
		waitFor(t, 30*time.Second, 200*time.Millisecond, "the lost host's series to say 1", func() error {
			return gaugeIs(d, "driftless_host_up", map[string]string{"environment": "prod", "host": lost.Name}, 1)
		})
		runs, err := d.history("prod")
		if err != nil {
			t.Fatal(err)
		}
		var ofV2 []run
		for _, r := range runs {
			if r.Revision.Commit == v2 {
				ofV2 = append(ofV2, r)
			}
			if strings.Contains(r.Error, "daemon stopped") {
				t.Errorf("run %d says the daemon stopped, which it did not: %s", r.ID, r.Error)
			}
		}
		if len(ofV2) != 1 || ofV2[0].Result != "rolled_back" || !strings.Contains(ofV2[0].Error, "rollback of "+v2[:12]+" finished") {
			t.Errorf("runs of v2: %+v; want one, rolled back, saying the rollback finished", ofV2)
		}
		requireGauge(t, d, "driftless_reconcile_total", map[string]string{"environment": "prod", "result": "rolled_back"}, 1)
		if v, found, err := d.metric("driftless_rollbacks_total", map[string]string{"environment": "prod", "reason": "interrupted"}); err != nil || !found || v != 0 {
			t.Errorf("driftless_rollbacks_total{reason=interrupted} = %v (found %v, %v); want 0: nothing was interrupted", v, found, err)
		}
	})
}

// loseLinkAtV2 waits until v2 of lostHostEnv reaches host, takes the
// host's link down and returns the function that brings it back; that is
// also done when the test ends, if the test did not.
func loseLinkAtV2(t testing.TB, host *hosts.Host) (restore func() error) {
	t.Helper()
	waitFor(t, time.Minute, 10*time.Millisecond, "v2 to reach "+host.Name, func() error {
		b, _ := os.ReadFile(filepath.Join(host.Root, "etc/app/version.conf"))
		if string(b) != "v2\n" {
			return fmt.Errorf("version.conf on %s is %q", host.Name, b)
		}
		return nil
	})
	if err := host.SetLink(false); err != nil {
		t.Fatal(err)
	}
	up := false
	restore = func() error {
		if up {
			return nil
		}
		up = true
		return host.SetLink(true)
	}
	t.Cleanup(func() { _ = restore() })
	return restore
}

// gaugeIs returns an error unless the summed series is present and equal
// to want.
func gaugeIs(d *daemon, name string, labels map[string]string, want float64) error {
	v, found, err := d.metric(name, labels)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("%s%v is absent", name, labels)
	case v != want:
		return fmt.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
	return nil
}

// requireGauge fails the test unless gaugeIs holds.
func requireGauge(t testing.TB, d *daemon, name string, labels map[string]string, want float64) {
	t.Helper()
	if err := gaugeIs(d, name, labels, want); err != nil {
		t.Error(err)
	}
}
