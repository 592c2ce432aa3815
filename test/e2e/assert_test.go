package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/hosts"
)

// waitApplied waits until the environment's last run applied commit with
// success.
func waitApplied(t testing.TB, d *daemon, env, commit string) {
	t.Helper()
	waitFor(t, 2*time.Minute, 100*time.Millisecond, "environment "+env+" to apply "+commit[:8], func() error {
		st, err := d.env(env)
		if err != nil {
			return err
		}
		if st.Applied != commit || st.LastResult != "success" {
			return fmt.Errorf("applied %q, state %q, last result %q, last error %q", st.Applied, st.State, st.LastResult, st.LastError)
		}
		return nil
	})
}

// requireRun fails the test unless the history has a run of commit with
// the result.
func requireRun(t testing.TB, d *daemon, env, commit, result string) {
	t.Helper()
	runs, err := d.history(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Revision.Commit == commit && r.Result == result {
			return
		}
	}
	t.Errorf("history of %s has no %s run of %s: %+v", env, result, commit[:8], runs)
}

// runsOf counts the history's runs of commit.
func runsOf(t testing.TB, d *daemon, env, commit string) int {
	t.Helper()
	runs, err := d.history(env)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range runs {
		if r.Revision.Commit == commit {
			n++
		}
	}
	return n
}

// requireMetricAtLeast fails the test unless the summed series is >= min.
func requireMetricAtLeast(t testing.TB, d *daemon, name string, labels map[string]string, min float64) {
	t.Helper()
	v, found, err := d.metric(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	if !found || v < min {
		t.Errorf("%s%v = %v (found %v), want >= %v", name, labels, v, found, min)
	}
}

// requireServing checks on the host itself that the app unit is active and
// that /healthz, reached over the lab bridge, answers 200 with version.
func requireServing(t testing.TB, h *hosts.Host, version string) {
	t.Helper()
	out, err := h.Exec("systemctl is-active app.service")
	if strings.TrimSpace(out) != "active" {
		t.Errorf("app.service on %s is %q (%v)", h.Name, strings.TrimSpace(out), err)
	}
	code, body, err := httpGet(context.Background(), "http://"+h.Address+":8080/healthz")
	if err != nil || code != 200 || strings.TrimSpace(string(body)) != version {
		t.Errorf("/healthz on %s: status %d, body %q, err %v; want 200 %q", h.Name, code, body, err, version)
	}
}

// requireRelease checks that /opt/app/current on the host leads to the
// release of the archive with sha256 sum.
func requireRelease(t testing.TB, h *hosts.Host, sum string) {
	t.Helper()
	target, err := os.Readlink(filepath.Join(h.Root, "opt/app/current"))
	if err != nil {
		t.Errorf("read /opt/app/current on %s: %v", h.Name, err)
		return
	}
	if !strings.Contains(target, sum[:12]) {
		t.Errorf("/opt/app/current on %s leads to %q, want the release %s", h.Name, target, sum[:12])
	}
}
