package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

// buildTimeout bounds one `go build`; the machine running the suite may be
// busy compiling other packages at the same time.
const buildTimeout = 8 * time.Minute

// goTool returns the go command of the toolchain running the test, or
// skips the test when there is none.
func goTool(t testing.TB) string {
	t.Helper()
	// go test puts its own toolchain's bin first on PATH.
	p, err := exec.LookPath("go")
	if err != nil {
		need.Missing(t, "the end-to-end test builds binaries and needs the go command, which is not found")
	}
	return p
}

// goBuild builds the package pkg (a path relative to this package's folder)
// as a static binary at out.
func goBuild(goCmd, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// buildBinaries builds, at the same time, the daemon and (when app is true)
// the tiny service deployed by the tests, into a temporary folder of t.
func buildBinaries(t testing.TB, app bool) (driftless, appBin string) {
	t.Helper()
	goCmd := goTool(t)
	dir := t.TempDir()
	driftless, appBin = filepath.Join(dir, "driftless"), filepath.Join(dir, "app")
	errs := make(chan error, 2)
	go func() { errs <- goBuild(goCmd, "../../cmd/driftless", driftless) }()
	n := 1
	if app {
		n++
		go func() { errs <- goBuild(goCmd, "./testdata/app", appBin) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return driftless, appBin
}

// daemon is a running `driftless serve` subprocess.
type daemon struct {
	// URL is the daemon's HTTP base ("http://127.0.0.1:PORT").
	URL string

	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
	exited error
	killed bool
}

// kill ends the daemon with SIGKILL, as a crash would; stop then has
// nothing left to do.
func (d *daemon) kill(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	d.killed = true
	d.mu.Unlock()
	_ = d.cmd.Process.Kill()
	<-d.done
}

// startDaemon starts bin serve with the configuration file cfg and waits
// until it listens. It is stopped with SIGTERM when the test ends, and must
// then exit 0 on its own.
func startDaemon(t testing.TB, bin, cfg string) *daemon {
	t.Helper()
	return startProcess(t, bin, "serve", "--config", cfg, "--log-level", "debug")
}

// startProcess starts bin with args, a command that serves HTTP and logs
// "driftless started" (serve, agent --pull), as startDaemon does.
func startProcess(t testing.TB, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{done: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("pipe daemon stderr: %v", err)
	}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	addr := make(chan string, 1)
	go d.readLog(stderr, addr)
	t.Cleanup(func() { d.stop(t) })
	select {
	case a := <-addr:
		d.URL = "http://" + a
	case <-d.done:
		t.Fatalf("daemon exited before listening: %v\n%s", d.exited, d.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not log that it listens within 30s\n%s", d.Log())
	}
	return d
}

// readLog keeps the daemon's JSON log for failing tests and sends the
// listen address of its "driftless started" line.
func (d *daemon) readLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	sent := false
	for sc.Scan() {
		line := sc.Bytes()
		d.mu.Lock()
		d.log.Write(line)
		d.log.WriteByte('\n')
		d.mu.Unlock()
		if sent {
			continue
		}
		var v struct {
			Message string `json:"message"`
			Listen  string `json:"listen"`
		}
		if json.Unmarshal(line, &v) == nil && v.Message == "driftless started" && v.Listen != "" {
			addr <- v.Listen
			sent = true
		}
	}
	d.exited = d.cmd.Wait()
	close(d.done)
}

// Log returns what the daemon logged so far.
func (d *daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop sends SIGTERM and expects a clean exit within 20 s.
func (d *daemon) stop(t testing.TB) {
	d.mu.Lock()
	killed := d.killed
	d.mu.Unlock()
	if killed {
		return
	}
	select {
	case <-d.done:
		if d.exited != nil {
			t.Errorf("daemon had exited on its own: %v", d.exited)
		}
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.exited != nil {
			t.Errorf("daemon did not exit cleanly on SIGTERM: %v", d.exited)
		}
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("daemon did not stop within 20s of SIGTERM")
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tailString(d.Log(), 30000))
	}
	// DRIFTLESS_E2E_DAEMON_LOG keeps the whole log of a passing run too,
	// to study where the time of a benchmark goes.
	if p := os.Getenv("DRIFTLESS_E2E_DAEMON_LOG"); p != "" {
		if err := os.WriteFile(p, []byte(d.Log()), 0o644); err != nil {
			t.Errorf("keep the daemon log: %v", err)
		}
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// waitFor polls cond every step until it returns nil, or fails the test
// after timeout with cond's last error.
func waitFor(t testing.TB, timeout, step time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(step)
	}
}
