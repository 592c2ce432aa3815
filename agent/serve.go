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
	"path/filepath"
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
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the agent's own folder: %w", err)
	}
	spool := filepath.Dir(exe)
	br := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	// One host end per session: the system bus is opened once, when a
	// step first needs it.
	host := targets.NewHost("")
	defer host.Close()
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read requests: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil {
			// The session is out of step: what follows the line may be
			// an archive's bytes, not a request. It is answered, then
			// ended, so that nothing after it is read as a request.
			_ = enc.Encode(Response{Err: fmt.Sprintf("read request: %v", err)})
			_ = w.Flush()
			return fmt.Errorf("read request: %w (the session is ended)", err)
		}
		// The archives follow the line whatever becomes of the request:
		// they are read off the session first.
		files, refused, err := receiveArchives(br, req, spool)
		if err != nil {
			return fmt.Errorf("read the archives of request %d: %w", req.ID, err)
		}
		var resp Response
		if refused != nil {
			resp = Response{ID: req.ID, ApplyErr: refused.Error()}
		} else {
			resp = handle(ctx, req, hello, host)
		}
		for _, f := range files {
			f.Close()
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("answer request %d: %w", req.ID, err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("answer request %d: %w", req.ID, err)
		}
	}
}

// readLine reads one request line, without its newline, of at most
// maxLine bytes; a last line without a newline counts.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxLine {
			return nil, fmt.Errorf("a request line is over %d bytes", maxLine)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		}
		return nil, err
	}
}

// receiveArchives reads the archives that follow an apply request's line
// (Request.Archives) into nameless files in dir (made, then unlinked at
// once: nothing stays behind if the agent dies) and gives each to its
// step; the files are returned for closing. refused is the request's
// error: a file could not be written (its bytes were read and dropped
// all the same), and no step may run. err is the session's: the bytes
// did not all arrive, or their sizes make no sense, and nothing more can
// be read from it.
func receiveArchives(br *bufio.Reader, req Request, dir string) (files []*os.File, refused, err error) {
	if len(req.Archives) == 0 {
		return nil, nil, nil
	}
	if len(req.Archives) != len(req.Steps) {
		return nil, nil, fmt.Errorf("%d archive sizes for %d steps", len(req.Archives), len(req.Steps))
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			files = nil
		}
	}()
	for i, n := range req.Archives {
		if n < 0 {
			return files, nil, fmt.Errorf("step %d: archive size %d", i+1, n)
		}
		if n == 0 {
			continue
		}
		src := &io.LimitedReader{R: br, N: n}
		f, werr := spoolFile(dir)
		if werr == nil {
			files = append(files, f)
			_, werr = io.Copy(f, src)
		}
		if werr != nil && refused == nil {
			refused = fmt.Errorf("receive the archive of step %d, nothing applied: %w", i+1, werr)
		}
		// What was not written is read all the same, to stay in step
		// with the session.
		if _, err := io.Copy(io.Discard, src); err != nil {
			return files, nil, err
		}
		if src.N > 0 {
			return files, nil, fmt.Errorf("step %d: the archive ended %d bytes short", i+1, src.N)
		}
		if refused == nil {
			req.Steps[i].Archive = io.NewSectionReader(f, 0, n)
		}
	}
	return files, refused, nil
}

// spoolFile makes a nameless file in dir.
func spoolFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".archive-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// handle answers one request.
func handle(ctx context.Context, req Request, hello Hello, host *targets.Host) Response {
	resp := Response{ID: req.ID}
	if req.Fence != nil {
		ctx = targets.WithHostFence(ctx, *req.Fence)
	}
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
			resp.Fenced = errors.Is(err, targets.ErrHostFenced)
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
			resp.Fenced = errors.Is(err, targets.ErrHostFenced)
		}
	case OpFence:
		if req.Mark == nil {
			resp.Err = "fence: no event"
			break
		}
		if err := targets.MarkHostFence(*req.Mark); err != nil {
			resp.FenceErr = err.Error()
			resp.Fenced = errors.Is(err, targets.ErrHostFenced)
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
