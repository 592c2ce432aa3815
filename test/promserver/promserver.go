// Package promserver starts a real Prometheus server for tests: on a free
// loopback port, with a throwaway configuration and storage, scraping the
// targets a test gives it every second. Tests skip when the prometheus
// binary is not installed.
package promserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/syncbuf"
)

// ScrapeInterval is how often the server scrapes its targets and
// evaluates its rules.
const ScrapeInterval = time.Second

// startTimeout bounds how long Start waits for readiness and the first
// scrape of every target. Readiness takes a fraction of a second; the
// first scrape about 6 s, since Prometheus hands discovered targets to
// its scrape manager on a fixed 5 s tick. Start without targets returns
// at readiness.
const startTimeout = 30 * time.Second

// Options tunes Start. The zero value scrapes nothing and loads no rules.
type Options struct {
	// Targets are scraped every ScrapeInterval: "host:port" (path
	// /metrics) or a full URL "http://host:port/path".
	Targets []string
	// RuleFiles are Prometheus rule files (alerting or recording) to load.
	RuleFiles []string
}

// Start starts a Prometheus server scraping targets and returns its base
// URL ("http://127.0.0.1:PORT"). It returns once the server is ready and
// has scraped every target once. The server is stopped when t ends.
func Start(t testing.TB, targets ...string) string {
	t.Helper()
	return StartWith(t, Options{Targets: targets})
}

// StartWith is Start with rule files and other options.
func StartWith(t testing.TB, opts Options) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		need.Missing(t, "prometheus is not installed (Debian package prometheus; test/install-deps.sh installs it): skipping the test that needs a real Prometheus")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	content, err := configFile(opts)
	if err != nil {
		t.Fatalf("promserver: %v", err)
	}
	if err := os.WriteFile(cfg, content, 0o644); err != nil {
		t.Fatalf("promserver: write config: %v", err)
	}
	// The port is chosen by closing a listener and handing its port on, so
	// another process may take it in between: try a few ports.
	var lastErr error
	for try := 0; try < 3; try++ {
		base, err := launch(t, bin, cfg, filepath.Join(dir, fmt.Sprintf("data%d", try)))
		if err == nil {
			waitScraped(t, base, len(opts.Targets))
			return base
		}
		lastErr = err
	}
	t.Fatalf("promserver: %v", lastErr)
	return ""
}

// configFile writes one job per target so that each can have its own
// scheme and path.
func configFile(opts Options) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n  scrape_timeout: %s\n",
		ScrapeInterval, ScrapeInterval, ScrapeInterval)
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, fmt.Errorf("rule file %s: %w", f, err)
			}
			fmt.Fprintf(&b, "  - %q\n", abs)
		}
	}
	b.WriteString("scrape_configs:\n")
	for i, target := range opts.Targets {
		scheme, hostPort, path := "http", target, "/metrics"
		if strings.Contains(target, "://") {
			u, err := url.Parse(target)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", target, err)
			}
			scheme, hostPort = u.Scheme, u.Host
			if u.Path != "" {
				path = u.Path
			}
		}
		fmt.Fprintf(&b, "  - job_name: %q\n    scheme: %s\n    metrics_path: %q\n    static_configs:\n      - targets: [%q]\n",
			fmt.Sprintf("target%d", i), scheme, path, hostPort)
	}
	return []byte(b.String()), nil
}

// launch starts the server on a free port and waits for /-/ready. An error
// means the server exited before it was ready (most likely the port was
// taken); the caller tries again.
func launch(t testing.TB, bin, cfg, data string) (string, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("promserver: find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("promserver: free port %s: %v", addr, err)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	// If the test binary dies without running its cleanups, the kernel
	// kills the server rather than leaving it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("promserver: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	base := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return "", fmt.Errorf("prometheus exited before it was ready (%v): %s", waitErr, logs.String())
		default:
		}
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(func() {
					stop()
					if t.Failed() {
						t.Logf("promserver: prometheus logs:\n%s", logs.String())
					}
				})
				return base, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	t.Fatalf("promserver: prometheus not ready within %s: %s", startTimeout, logs.String())
	return "", nil
}

// waitScraped waits until every target has been scraped once, that is
// until the query count(up) returns n.
func waitScraped(t testing.TB, base string, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	deadline := time.Now().Add(startTimeout)
	var last string
	for time.Now().Before(deadline) {
		v, err := Query(base, "count(up)")
		if err == nil && v == fmt.Sprint(n) {
			return
		}
		last = fmt.Sprintf("count(up)=%q err=%v", v, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("promserver: %d targets not all scraped within %s (%s)", n, startTimeout, last)
}

// Query runs an instant query and returns the first sample's value as
// Prometheus wrote it, or "" when the result is empty. It is a test aid:
// the product's own client is in reconciler/verify.
func Query(base, query string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := base + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("build query %q: %w", query, err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("query %q: decode: %w", query, err)
	}
	if body.Status != "success" {
		return "", fmt.Errorf("query %q: %s", query, body.Error)
	}
	if len(body.Data.Result) == 0 {
		return "", nil
	}
	return fmt.Sprint(body.Data.Result[0].Value[1]), nil
}

// Alert is one active alert as /api/v1/alerts lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// State is "pending" (condition true, its for: not yet elapsed) or "firing".
	State string `json:"state"`
}

// Alerts returns the server's active alerts, pending and firing.
func Alerts(base string) ([]Alert, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/alerts", nil)
	if err != nil {
		return nil, fmt.Errorf("build alerts request: %w", err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("list alerts: decode: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("list alerts: %s", body.Error)
	}
	return body.Data.Alerts, nil
}
