package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the driftless binary once for a test.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "driftless")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const warnedEnv = `environment: warned
drift: warn
hosts:
  - name: h
    transport: local
    resources:
      - directory: /etc
        drift: enforce
      - file: /etc/motd
        content: "hello\n"
        requires: [directory:/etc]
`

// TestServeMetrics runs the built binary's `serve` on a local folder
// source and checks /metrics, /healthz and /readyz, including a drift
// that is only reported (mode warn).
func TestServeMetrics(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	repo, root := filepath.Join(dir, "repo"), filepath.Join(dir, "root")
	if err := os.CopyFS(repo, os.DirFS("../../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "environments", "warned.yaml"), []byte(warnedEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\ndrift_interval: 1s\nsources:\n  - name: repo\n    local: {path: %s, interval: 1s}\n", addr, filepath.Join(dir, "state"), repo)
	cfgPath := filepath.Join(dir, "driftless.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pprofAddr := freeAddr(t)
	cmd := exec.CommandContext(ctx, bin, "serve", "-config", cfgPath, "-sandbox-root", root, "--pprof-listen", pprofAddr)
	logs := &strings.Builder{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	}()
	metrics := "http://" + addr + "/metrics"
	deadline := time.Now().Add(60 * time.Second)
	if err := waitFor(ctx, deadline, func() bool {
		return metricValue(metrics, `driftless_reconcile_total{environment="warned",result="success"}`) >= 1 &&
			metricValue(metrics, `driftless_reconcile_total{environment="quickstart",result="success"}`) >= 1
	}); err != nil {
		t.Fatalf("no successful reconcile seen: %v", err)
	}
	motd := filepath.Join(root, "h", "etc", "motd")
	if err := os.WriteFile(motd, []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	series := `driftless_drift_resources{environment="warned",host="h",kind="file",mode="warn"}`
	if err := waitFor(ctx, deadline, func() bool { return metricValue(metrics, series) == 1 }); err != nil {
		t.Fatalf("drift not reported as %s: %v", series, err)
	}
	if got, _ := os.ReadFile(motd); string(got) != "edited\n" {
		t.Fatalf("warn mode corrected the file: %q", got)
	}
	// A change of the source is rolled out without waiting for anything
	// else, the hand edit of warn mode included.
	changed := strings.Replace(warnedEnv, `content: "hello\n"`, `content: "hello again\n"`, 1)
	if err := os.WriteFile(filepath.Join(repo, "environments", "warned.yaml"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, deadline, func() bool { got, _ := os.ReadFile(motd); return string(got) == "hello again\n" }); err != nil {
		got, _ := os.ReadFile(motd)
		t.Fatalf("the changed source was not applied: %v, motd %q", err, got)
	}
	page := strings.Join(metricLines(metrics, "driftless_build_info", "driftless_reconcile_duration_seconds_bucket", "driftless_config_last_reload_successful"), "\n")
	for _, want := range []string{
		// The binary is built by this test's toolchain, without -ldflags.
		fmt.Sprintf(`driftless_build_info{goversion=%q,version="dev"} 1`, runtime.Version()),
		`driftless_reconcile_duration_seconds_bucket{environment="quickstart",le="600"}`,
		`driftless_config_last_reload_successful 1`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s\n%s", want, page)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if err := waitFor(ctx, deadline, func() bool { return httpOK("http://" + addr + p) }); err != nil {
			t.Errorf("%s never answered 200", p)
		}
	}
	// Profiling is served on its own address only, never on the main one.
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1"} {
		if !httpOK("http://" + pprofAddr + p) {
			t.Errorf("pprof address: %s did not answer 200", p)
		}
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Errorf("main address: %s: %v", p, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("main address: %s answered %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestPprofOffByDefault: serve has no pprof address unless one is given.
func TestPprofOffByDefault(t *testing.T) {
	f := serveCmd(&cliEnv{}).Flags().Lookup("pprof-listen")
	if f == nil || f.DefValue != "" {
		t.Fatalf("--pprof-listen flag = %+v, want one defaulting to off", f)
	}
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
