package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/driftless/driftless/targets"
)

// maxLine bounds one request line (a batch of queries, no content).
const maxLine = 64 << 20

// Serve answers the requests read from in, one JSON line each, on out,
// until in ends (the daemon closed the session) or ctx does.
func Serve(ctx context.Context, in io.Reader, out io.Writer, version string) error {
	hello, err := Self(version)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	// One host end per session: the system bus is opened once, when a
	// step first needs it.
	host := targets.NewHost("")
	defer host.Close()
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var req Request
		resp := Response{}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Err = fmt.Sprintf("read request: %v", err)
		} else {
			resp = handle(ctx, req, hello, host)
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("answer request %d: %w", req.ID, err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("answer request %d: %w", req.ID, err)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read requests: %w", err)
	}
	return nil
}

// handle answers one request.
func handle(ctx context.Context, req Request, hello Hello, host *targets.Host) Response {
	resp := Response{ID: req.ID}
	switch req.Op {
	case OpHello:
		resp.Hello = &hello
	case OpObserve:
		resp.Answers = targets.ObserveQueries(ctx, req.Queries)
	case OpWrite:
		// The local transport's writes are the in-process writes of this
		// host, with the same contract as the SSH transport's.
		files := make([]targets.FileWrite, len(req.Writes))
		for i, w := range req.Writes {
			files[i] = targets.FileWrite{Path: w.Path, Data: w.Data, Mode: fs.FileMode(w.Mode), Owner: w.Owner, Group: w.Group}
		}
		n, err := targets.NewLocal("").WriteFiles(ctx, files)
		resp.Written = n
		if err != nil {
			resp.WriteErr = err.Error()
		}
	case OpCheck:
		if req.Check == nil {
			resp.Err = "check: no script"
			break
		}
		resp.Check = runCheck(ctx, *req.Check)
	case OpApply:
		if req.TimeoutMS > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
			defer cancel()
		}
		n, err := host.Apply(ctx, req.Steps)
		resp.Applied = n
		if err != nil {
			resp.ApplyErr = err.Error()
		}
	default:
		resp.Err = fmt.Sprintf("unknown operation %q (agent protocol %d)", req.Op, Protocol)
	}
	return resp
}

// maxCheckStderr is how much of a check's stderr its answer carries: the
// end, where the error usually is.
const maxCheckStderr = 64 << 10

// runCheck runs a command check with the local transport's Run (sh -c in
// its own process group, the group killed when the time is up).
func runCheck(ctx context.Context, c Check) *CheckResult {
	if c.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	res, err := targets.NewLocal("").Run(ctx, c.Script, nil)
	out := &CheckResult{Exit: res.Exit, Stderr: res.Stderr}
	if n := len(out.Stderr); n > maxCheckStderr {
		out.Stderr = out.Stderr[n-maxCheckStderr:]
	}
	if err != nil {
		out.Err = err.Error()
	}
	return out
}

// Self describes the running binary: its protocol, version and SHA-256.
func Self(version string) (Hello, error) {
	h := Hello{Protocol: Protocol, Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH, UID: os.Getuid()}
	exe, err := os.Executable()
	if err != nil {
		return h, fmt.Errorf("find the agent's own binary: %w", err)
	}
	sum, err := fileSum(exe)
	if err != nil {
		return h, err
	}
	h.Sum = sum
	return h, nil
}

// fileSum is the SHA-256 of a file, hex.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
