package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is an output the daemon writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is a `driftless serve` the test started on a local folder
// source.
type testDaemon struct {
	addr, repo, root string
	logs             *syncBuffer
}

// startDaemon copies the quickstart example into a folder source and runs
// the built binary's serve on it with args; settings (drift_interval,
// api...) are appended to the daemon's configuration file. The daemon is
// stopped when the test ends.
func startDaemon(t *testing.T, bin, settings string, args ...string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &testDaemon{addr: freeAddr(t), repo: filepath.Join(dir, "repo"), root: filepath.Join(dir, "root"), logs: &syncBuffer{}}
	if err := os.CopyFS(d.repo, os.DirFS("../../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\nsources:\n  - name: repo\n    local: {path: %s, interval: 1s}\n%s",
		d.addr, filepath.Join(dir, "state"), d.repo, settings)
	cfgPath := filepath.Join(dir, "driftless.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--config", cfgPath, "--sandbox-root", d.root}, args...)...)
	cmd.Stderr = d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.logs.String())
		}
	})
	return d
}

// waitMetric waits until the daemon's series reaches at least min.
func (d *testDaemon) waitMetric(t *testing.T, series string, min float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := "http://" + d.addr + "/metrics"
	if err := waitFor(ctx, time.Now().Add(90*time.Second), func() bool { return metricValue(url, series) >= min }); err != nil {
		t.Fatalf("%s never reached %v: %v", series, min, err)
	}
}

// logLevels counts the daemon's JSON log lines by level.
func logLevels(logs string) map[string]int {
	n := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		var f struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &f) == nil {
			n[f.Level]++
		}
	}
	return n
}

// TestServeLogLevel: serve --log-level debug logs debug lines on a daemon's
// ordinary work (a rollout and drift passes), and the default level,
// info, logs none of them.
func TestServeLogLevel(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		args      []string
		wantDebug bool
	}{
		{[]string{"--log-level", "debug"}, true},
		{nil, false},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			d := startDaemon(t, bin, "drift_interval: 1s\n", tc.args...)
			// Two noop passes: at least one whole drift pass after the rollout.
			d.waitMetric(t, `driftless_reconcile_total{environment="quickstart",result="noop"}`, 2)
			logs := d.logs.String()
			levels := logLevels(logs)
			if levels["info"] == 0 {
				t.Fatalf("no info line at all:\n%s", logs)
			}
			if got := levels["debug"] > 0; got != tc.wantDebug {
				t.Errorf("debug lines: %d, want some: %v\n%s", levels["debug"], tc.wantDebug, logs)
			}
			if tc.wantDebug {
				for _, msg := range []string{`"message":"host observed"`, `"message":"drift pass"`} {
					if !strings.Contains(logs, msg) {
						t.Errorf("no %s debug line", msg)
					}
				}
			}
		})
	}
}
