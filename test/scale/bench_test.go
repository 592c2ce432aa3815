package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// BenchmarkDriftScan scans a fleet of kind-1 hosts (default 50, each with
// 200 resources: files, packages, services) for drift with driftless
// (through each host's agent) and,
// on the same hosts in the same run, with `ansible-playbook --check
// --diff`. Run it with -benchtime=1x: the fleet is set up once per call.
// DRIFTLESS_SCALE_HOSTS, DRIFTLESS_SCALE_RESOURCES and
// DRIFTLESS_SCALE_PARALLELISM change the size and driftless's parallelism;
// DRIFTLESS_SCALE_SKIP_ANSIBLE=1 measures driftless alone (Ansible takes
// minutes where driftless takes seconds).
func BenchmarkDriftScan(b *testing.B) {
	if testing.Short() {
		need.Optional(b, "scale benchmark: skipped with -short (it starts a fleet of hosts and runs Ansible)")
	}
	if os.Geteuid() != 0 {
		need.Missing(b, "scale benchmark: needs root for its test hosts")
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		need.Missing(b, "scale benchmark: needs ansible-playbook (Debian's ansible, see test/install-deps.sh)")
	}
	if !hasPython() {
		need.Missing(b, "scale benchmark: needs python3.11 and python3-apt on the runner, lent to the hosts for Ansible")
	}
	want := envInt(b, "DRIFTLESS_SCALE_HOSTS", 50)
	m := mixFor(envInt(b, "DRIFTLESS_SCALE_RESOURCES", 200))
	par := envInt(b, "DRIFTLESS_SCALE_PARALLELISM", ssh.DefaultParallelism)
	lab := hosts.NewLab(b, hosts.Options{})
	setup := time.Now()
	fleet := startFleet(b, lab, want, m)
	b.Logf("fleet started and seeded in %v", time.Since(setup).Round(time.Millisecond))
	rs := m.resources()
	b.Logf("fleet: %d kind-1 hosts, %d resources each (%d files of which %d changed and %d missing, %d packages, %d services)",
		len(fleet), len(rs), m.Files, m.Changed, m.Missing, m.Packages, m.Services)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	defaults := ssh.Config{User: "root", KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Logger: zerolog.Nop()}
	// driftless reaches the hosts through its agent: the binary's first
	// copy to every host is made before the timing (BenchmarkDriftScanAgent
	// measures it); a cold scan dials every host and starts its agent.
	agents := newFleetAgents(agentbin.Build(b))
	defer agents.Close()
	pool := ssh.NewPool(defaults, 0)
	if _, err := scan(ctx, pool, fleet, rs, par, agents.via); err != nil {
		b.Fatalf("first contact: %v", err)
	}
	agents.Close()
	pool.Close()
	var cold, warm time.Duration
	var rtWarm int64
	var heap, sys uint64
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pool := ssh.NewPool(defaults, 0)
		mp := startMemPeak()
		rc, errC := scan(ctx, pool, fleet, rs, par, agents.via)
		rw, errW := scan(ctx, pool, fleet, rs, par, agents.via)
		mp.Stop()
		agents.Close()
		pool.Close()
		for _, err := range []error{errC, errW, rc.check(fleet, m), rw.check(fleet, m)} {
			if err != nil {
				b.Fatalf("driftless scan: %v", err)
			}
		}
		b.Logf("driftless scan %d: cold %v, warm %v", i, rc.Wall.Round(time.Millisecond), rw.Wall.Round(time.Millisecond))
		cold, warm, rtWarm = cold+rc.Wall, warm+rw.Wall, rtWarm+rw.RoundTrips
		heap, sys = max(heap, mp.HeapInuse), max(sys, mp.Sys)
	}
	b.StopTimer()
	n := float64(b.N)
	coldS, warmS := cold.Seconds()/n, warm.Seconds()/n
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	b.ReportMetric(float64(len(fleet)), "hosts")
	b.ReportMetric(float64(len(rs)), "resources/host")
	b.ReportMetric(coldS, "dl-cold-s")
	b.ReportMetric(warmS, "dl-warm-s")
	b.ReportMetric(float64(rtWarm)/n/float64(len(fleet)), "roundtrips/host")
	b.ReportMetric(float64(heap)/(1<<20), "dl-heap-peak-MiB")
	b.ReportMetric(float64(sys)/(1<<20), "dl-sys-peak-MiB")
	b.ReportMetric(float64(ru.Maxrss)/1024, "dl-maxrss-MiB")

	if os.Getenv("DRIFTLESS_SCALE_SKIP_ANSIBLE") != "" {
		b.Logf("driftless: cold %.2fs, warm %.3fs, %.1f round trips/host; ansible skipped (DRIFTLESS_SCALE_SKIP_ANSIBLE)",
			coldS, warmS, float64(rtWarm)/n/float64(len(fleet)))
		return
	}
	connectS, checkS, rss := runAnsible(b, ctx, lab, fleet, m)
	b.ReportMetric(connectS, "ans-connect-s")
	b.ReportMetric(checkS, "ans-warm-s")
	b.ReportMetric(float64(rss)/(1<<20), "ans-rss-peak-MiB")
	b.ReportMetric(checkS/warmS, "x-faster-warm")
	b.ReportMetric((connectS+checkS)/coldS, "x-faster-cold")
	b.Logf("driftless: cold %.2fs, warm %.3fs, %.1f round trips/host; ansible: connect %.1fs, check %.1fs; %.0fx (warm), %.0fx (cold)",
		coldS, warmS, float64(rtWarm)/n/float64(len(fleet)), connectS, checkS, checkS/warmS, (connectS+checkS)/coldS)
}

// startFleet starts up to want kind-1 hosts, seeds their files and lends
// them Python. When the machine cannot hold want hosts, it measures as many
// as started and says so.
func startFleet(b *testing.B, lab *hosts.Lab, want int, m mix) []*hosts.Host {
	var fleet []*hosts.Host
	for i := 0; i < want; i++ {
		h, err := lab.StartKind1(fmt.Sprintf("sc%d-%d", lab.N, i))
		if err != nil {
			b.Logf("host %d of %d did not start (%v): measuring %d hosts", i+1, want, err, len(fleet))
			break
		}
		if err := m.seed(h.Root); err != nil {
			b.Fatalf("seed %s: %v", h.Name, err)
		}
		if err := lendPython(h); err != nil {
			b.Fatalf("%v", err)
		}
		fleet = append(fleet, h)
	}
	if len(fleet) == 0 {
		b.Fatal("no host started")
	}
	return fleet
}

// runAnsible opens Ansible's connections with a ping playbook, then runs
// the equivalent check. It returns the two wall times in seconds and the
// check's peak memory, and fails unless Ansible found the same drift.
func runAnsible(b *testing.B, ctx context.Context, lab *hosts.Lab, fleet []*hosts.Host, m mix) (float64, float64, int64) {
	dir, err := os.MkdirTemp("", "dlscale")
	if err != nil {
		b.Fatalf("ansible folder: %v", err)
	}
	// Not t.TempDir: its long names would overflow a Unix socket path.
	b.Cleanup(func() { os.RemoveAll(dir) })
	a, err := newAnsible(dir, lab, fleet, m)
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.Cleanup(a.closeMasters)
	ping := "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
	if err := os.WriteFile(filepath.Join(dir, "ping.yml"), []byte(ping), 0o644); err != nil {
		b.Fatalf("write ping playbook: %v", err)
	}
	connect, recaps, _, err := a.run(ctx, filepath.Join(dir, "ping.log"), "ping.yml")
	if err != nil {
		b.Fatalf("ansible connect: %v", err)
	}
	b.Logf("ansible connect (ping playbook): %v", connect.Round(time.Millisecond))
	for _, h := range fleet {
		if r := recaps[h.Name]; r.OK != 1 || r.Failed+r.Unreachable != 0 {
			b.Fatalf("ansible ping of %s: %+v", h.Name, r)
		}
	}
	log := filepath.Join(dir, "check.log")
	check, recaps, rss, err := a.run(ctx, log, "--check", "--diff", "scale.yml")
	if err != nil {
		b.Fatalf("ansible check: %v", err)
	}
	b.Logf("ansible check: %v", check.Round(time.Millisecond))
	if keep := os.Getenv("DRIFTLESS_SCALE_ANSIBLE_LOG"); keep != "" {
		if data, err := os.ReadFile(log); err == nil {
			os.WriteFile(keep, data, 0o644) //nolint:errcheck // a debugging aid
		}
	}
	for _, h := range fleet {
		if err := ansibleAgrees(recaps[h.Name], m); err != nil {
			b.Fatalf("ansible on %s: %v (log %s)", h.Name, err, log)
		}
	}
	return connect.Seconds(), check.Seconds(), rss
}

// ansibleAgrees says whether one host's recap found the drift driftless
// found: the changed and missing files, no package to install, and the
// services failing (ignored) for want of systemd.
func ansibleAgrees(r recap, m mix) error {
	if r.Unreachable != 0 || r.Failed != 0 {
		return fmt.Errorf("recap %+v: host unreachable or failed", r)
	}
	if r.Changed != m.Drifted() {
		return fmt.Errorf("recap %+v: %d changed, want %d", r, r.Changed, m.Drifted())
	}
	if r.Ignored != m.Services {
		return fmt.Errorf("recap %+v: %d ignored failures, want the %d services", r, r.Ignored, m.Services)
	}
	return nil
}
