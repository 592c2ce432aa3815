package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/driftless/driftless/targets"
)

// hostTransport is the transport the command tests run through. Until
// targets.NewLocal builds in this tree, a minimal real one: it runs the
// script with sh -c, DRIFTLESS_ROOT set, as the local transport does.
func hostTransport(t interface{ Helper() }, root string) targets.Transport {
	t.Helper()
	return shTransport{root: root}
}

type shTransport struct{ root string }

var _ targets.Transport = shTransport{}

func (s shTransport) Run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "DRIFTLESS_ROOT="+s.root)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	res := targets.Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run script: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Exit = ee.ExitCode()
		return res, nil
	}
	return res, err
}

func (s shTransport) WriteFile(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("not used by checks")
}
func (s shTransport) Root() string { return s.root }
func (s shTransport) Close() error { return nil }
