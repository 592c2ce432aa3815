package e2e

import (
	"bytes"
	"fmt"
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

// Sizes of the webhook-to-converged benchmark.
const (
	benchHosts  = 10
	benchFiles  = 5
	benchPushes = 20
)

// benchEnv declares benchFiles files whose content names the push on every
// host; with verify, a command check on each host reads one of them back.
func benchEnv(hs []*hosts.Host, push int, verify bool) string {
	var b strings.Builder
	b.WriteString("environment: bench\ndrift: enforce\nhosts:\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    roles: [bench]\n", h.Name, h.Address)
	}
	b.WriteString("roles:\n  bench:\n    - directory: /etc/bench\n      mode: \"0755\"\n")
	for i := range benchFiles {
		fmt.Fprintf(&b, "    - file: /etc/bench/f%d.conf\n      content: \"push %d\\n\"\n      mode: \"0644\"\n      requires: [directory:/etc/bench]\n", i, push)
	}
	fmt.Fprintf(&b, "rollout: {batch: %d, max_failed: 0}\n", len(hs))
	if verify {
		fmt.Fprintf(&b, "verify:\n  - name: content\n    command: \"grep -qx 'push %d' /etc/bench/f0.conf\"\n    timeout: 5s\n", push)
	}
	return b.String()
}

// BenchmarkWebhookToConverged measures, on 10 real SSH hosts, the time from
// the start of a `git push` to every host converged: the push's webhook
// makes the daemon fetch, plan and apply, and the sample ends when every
// host's files hold the pushed content and the daemon's API reports the
// commit applied with success. It reports p50_ms and p99_ms over 20 pushes,
// without verification and with a command check on every host. The
// daemon reaches each host through the driftless agent; its first contact
// (the binary's copy) is before the measured pushes. The shell path it
// replaced was measured by this benchmark before the agent became the
// one way to reach a host (DESIGN.md, "One way to reach a host").
func BenchmarkWebhookToConverged(b *testing.B) {
	if testing.Short() {
		need.Optional(b, "end-to-end benchmark: builds the daemon and starts 10 hosts; skipped in -short")
	}
	lab := hosts.NewLab(b, hosts.Options{})
	var hs []*hosts.Host
	for i := range benchHosts {
		hs = append(hs, lab.Kind1(fmt.Sprintf("bench-%d", i)))
	}
	bin, _ := buildBinaries(b, false)
	git := gitserver.New(b)
	repoURL := git.CreateRepo("infra")
	secret := []byte("bench-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(b, "infra")
	push := 0
	first := work.Commit(b, map[string]string{"environments/bench.yaml": benchEnv(hs, push, false)}, "push 0")
	work.Push(b)
	// A drift interval longer than the benchmark keeps drift passes out of
	// the measured pushes.
	cfg := daemonConfig(b, lab, repoURL, secret, time.Hour)
	d := startDaemon(b, bin, cfg)
	hook.setTarget(d.URL)
	waitFor(b, 2*time.Minute, 50*time.Millisecond, "the first revision to converge", func() error {
		return converged(d, hs, first, push)
	})

	for _, verify := range []bool{false, true} {
		name := "verify=excluded"
		if verify {
			name = "verify=included"
		}
		b.Run(name, func(b *testing.B) {
			n := max(b.N, benchPushes)
			lat := make([]time.Duration, 0, n)
			pushed := map[string]time.Time{}
			// One unmeasured push switches the declaration to this variant.
			for i := -1; i < n; i++ {
				push++
				sha := work.Commit(b, map[string]string{"environments/bench.yaml": benchEnv(hs, push, verify)}, fmt.Sprintf("push %d", push))
				start := time.Now()
				work.Push(b)
				var err error
				deadline := start.Add(2 * time.Minute)
				for err = converged(d, hs, sha, push); err != nil && time.Now().Before(deadline); err = converged(d, hs, sha, push) {
					time.Sleep(5 * time.Millisecond)
				}
				if err != nil {
					b.Fatalf("push %d did not converge within 2m: %v", push, err)
				}
				if i >= 0 {
					lat = append(lat, time.Since(start))
					pushed[sha] = start
				}
			}
			if sent := hook.check(b); sent < push {
				b.Fatalf("%d webhooks delivered for %d pushes", sent, push)
			}
			slices.Sort(lat)
			b.ReportMetric(ms(percentile(lat, 50)), "p50_ms")
			b.ReportMetric(ms(percentile(lat, 99)), "p99_ms")
			// The daemon's history splits each sample: from the push to
			// the start of the reconcile run (webhook, fetch, checkout,
			// validation) and the run itself (observe, apply, verify).
			lead, runTime := splitByHistory(b, d, pushed)
			b.ReportMetric(ms(percentile(lead, 50)), "to_start_p50_ms")
			b.ReportMetric(ms(percentile(runTime, 50)), "run_p50_ms")
		})
	}
}

// converged reports nil once every host holds push's content in all its
// files and the daemon says the environment applied commit with success.
func converged(d *daemon, hs []*hosts.Host, commit string, push int) error {
	want := []byte(fmt.Sprintf("push %d\n", push))
	for _, h := range hs {
		for i := range benchFiles {
			got, err := os.ReadFile(filepath.Join(h.Root, fmt.Sprintf("etc/bench/f%d.conf", i)))
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Errorf("f%d.conf on %s is %q (%v)", i, h.Name, got, err)
			}
		}
	}
	st, err := d.env("bench")
	if err != nil {
		return err
	}
	if st.Applied != commit || st.LastResult != "success" {
		return fmt.Errorf("applied %q, last result %q, last error %q", st.Applied, st.LastResult, st.LastError)
	}
	return nil
}

// percentile returns the p-th percentile (nearest rank) of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// splitByHistory returns, sorted, for every pushed commit the time from its
// push to the start of its reconcile run, and the run's own duration, read
// from the daemon's history.
func splitByHistory(b *testing.B, d *daemon, pushed map[string]time.Time) (lead, runTime []time.Duration) {
	b.Helper()
	runs, err := d.history("bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range runs {
		start, ok := pushed[r.Revision.Commit]
		if !ok || r.Trigger != "revision" {
			continue
		}
		lead = append(lead, r.Start.Sub(start))
		runTime = append(runTime, r.End.Sub(r.Start))
	}
	if len(lead) != len(pushed) {
		b.Fatalf("history has %d runs of the %d measured pushes", len(lead), len(pushed))
	}
	slices.Sort(lead)
	slices.Sort(runTime)
	return lead, runTime
}
