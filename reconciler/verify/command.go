package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// stderrLines is how many trailing lines of stderr a failed command's
// reason carries: the end is where the error usually is.
const stderrLines = 5

// commandCheck runs c.Command and passes when it exits 0. On "host" (the
// default) it runs through the host's transport; on "local" it runs on the
// daemon's machine with sh -c.
func commandCheck(_ *Runner, c config.Check, _ *config.Host, t targets.Transport, _ *Result) (attempt, error) {
	switch c.On {
	case "", "host":
		return func(ctx context.Context) (string, error) {
			// Checked here rather than when preparing, so that Validate can
			// prepare a check without a host.
			if t == nil {
				return "", fmt.Errorf("run %q on host: expected exit 0, but there is no transport to the host", c.Command)
			}
			run := t.Run
			if cr, ok := t.(targets.CheckRunner); ok {
				run = func(ctx context.Context, script string, _ []byte) (targets.Result, error) {
					return cr.RunCheck(ctx, script)
				}
			}
			res, err := run(ctx, c.Command, nil)
			if err != nil {
				return "", fmt.Errorf("run %q on host: expected exit 0, could not run: %w", c.Command, err)
			}
			return commandOutcome(c.Command, "host", res.Exit, res.Stderr)
		}, nil
	case "local":
		return func(ctx context.Context) (string, error) {
			exit, stderr, err := runLocal(ctx, c.Command, nil)
			if err != nil {
				return "", fmt.Errorf("run %q locally: expected exit 0, could not run: %w", c.Command, err)
			}
			return commandOutcome(c.Command, "local", exit, stderr)
		}, nil
	}
	return nil, fmt.Errorf("on: %q is neither host nor local", c.On)
}

func commandOutcome(cmd, where string, exit int, stderr []byte) (string, error) {
	if exit == 0 {
		return fmt.Sprintf("%q on %s exited 0", cmd, where), nil
	}
	return "", fmt.Errorf("%q on %s: expected exit 0, got exit %d (stderr: %s)", cmd, where, exit, lastLines(stderr, stderrLines))
}

// runLocal runs script with sh -c in its own process group, so that when
// ctx ends the whole group is killed, not only the shell (a shell's child
// would otherwise keep the pipes open and the check would hang). Its
// standard output goes to stdout (nil: discarded).
func runLocal(ctx context.Context, script string, stdout io.Writer) (exit int, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Stdout = stdout
	// Only the end of stderr goes into a reason, so only the end is kept.
	errBuf := &tail{max: 64 << 10}
	cmd.Stderr = errBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, errBuf.Bytes(), ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		// A process killed by a signal has no exit code; report it the way
		// a shell does, 128 plus the signal number.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return code, errBuf.Bytes(), nil
	}
	if err != nil {
		return -1, errBuf.Bytes(), err
	}
	return 0, errBuf.Bytes(), nil
}

// lastLines returns the last n non-empty lines of b, joined with " | ".
func lastLines(b []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "empty"
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " | ")
	const maxLen = 1000
	if len(s) > maxLen {
		s = "..." + s[len(s)-maxLen:]
	}
	return s
}

// tail is a writer that keeps only the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// Bytes returns what is kept.
func (t *tail) Bytes() []byte { return t.buf }
