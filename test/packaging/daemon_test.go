package packaging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a `driftless serve` child process of a test.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan error
	http *http.Client
}

// startDaemon runs `driftless serve -config cfg` with the extra args,
// waits until it logs the address it serves on, and stops it (SIGTERM) at
// the end of the test, failing the test when it does not exit cleanly.
func startDaemon(t *testing.T, bin, cfg string, args ...string) *daemon {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		log:  logPath,
		done: make(chan error, 1),
		http: testHTTPClient(),
	}
	d.cmd = exec.Command(bin, append([]string{"serve", "-config", cfg, "-log-level", "debug"}, args...)...)
	d.cmd.Stderr = logFile
	d.cmd.Stdout = logFile
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start the daemon: %v", err)
	}
	go func() {
		d.done <- d.cmd.Wait()
		logFile.Close()
	}()
	t.Cleanup(func() { d.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for d.addr == "" {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("the daemon exited at start: %v\n%s", err, d.logText())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log `driftless started` within 30s\n%s", d.logText())
		}
		d.addr = d.startedAddr()
	}
	return d
}

// testHTTPClient has a timeout and no keep-alives, so that no idle
// connection's goroutine outlives the test (goleak).
func testHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// startedAddr returns the address of the "driftless started" log line
// ("" until it is written). The daemon logs JSON lines when its standard
// error is not a terminal.
func (d *daemon) startedAddr() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			Listen  string `json:"listen"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "driftless started" {
			return line.Listen
		}
	}
	return ""
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return lastLines(string(b), 60)
}

// stop sends SIGTERM and expects a clean exit within the unit's
// TimeoutStopSec; past that it kills the daemon and fails.
func (d *daemon) stop(t *testing.T) {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal the daemon: %v", err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("the daemon did not exit cleanly on SIGTERM: %v\n%s", err, d.logText())
		}
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon did not stop within 90s of SIGTERM\n%s", d.logText())
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.logText())
	}
}

// get fetches path from the daemon and returns the body.
func (d *daemon) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// post sends body to path with the headers and returns the status.
func (d *daemon) post(ctx context.Context, path string, h http.Header, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = h
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
