package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrHostFenced is the error of a write request the host refused: a
// replica with a higher fencing token applied the environment to it
// since the request's owner took the environment.
var ErrHostFenced = errors.New("a newer owner applied to the host")

// HostFence is the fencing token a write request is made with, in
// cluster mode: the host refuses the request when its fence file for the
// environment (Dir/Env, kept by the reconciler's fence script) holds a
// higher token.
type HostFence struct {
	Env   string `json:"env"`
	Token int64  `json:"token"`
	// Dir is the host's fence folder, the transport's root applied.
	Dir string `json:"dir"`
}

// hostFenceKey is the context key of a write's HostFence.
type hostFenceKey struct{}

// WithHostFence returns ctx carrying f: the host writes made with it
// (WriteFiles, ApplyNative, through the agent or in process) are checked
// against the host's fence first.
func WithHostFence(ctx context.Context, f HostFence) context.Context {
	return context.WithValue(ctx, hostFenceKey{}, &f)
}

// HostFenceOf is the fence ctx carries, nil for none (a daemon alone, or
// within a request whose fence is already held).
func HostFenceOf(ctx context.Context) *HostFence {
	f, _ := ctx.Value(hostFenceKey{}).(*HostFence)
	return f
}

// holdHostFence checks ctx's fence on this host: under the lock the
// fence script takes (flock on Dir/Env.lock, so that the two exclude each
// other), it refuses when Dir/Env holds a higher token, and otherwise
// keeps the lock until release, while the request's writes run. The
// context returned carries no fence: the writes within do not lock again.
func holdHostFence(ctx context.Context) (context.Context, func(), error) {
	f := HostFenceOf(ctx)
	if f == nil {
		return ctx, func() {}, nil
	}
	if f.Env == "" || strings.ContainsAny(f.Env, "/\x00") || f.Env == "." || f.Env == ".." {
		return ctx, nil, fmt.Errorf("check the host fence: bad environment %q", f.Env)
	}
	file := filepath.Join(f.Dir, f.Env)
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return ctx, nil, fmt.Errorf("check the host fence for %s: %w", f.Env, err)
	}
	lock, err := os.OpenFile(file+".lock", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return ctx, nil, fmt.Errorf("check the host fence for %s: %w", f.Env, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return ctx, nil, fmt.Errorf("check the host fence for %s: lock: %w", f.Env, err)
	}
	release := func() { lock.Close() } // closing the only descriptor unlocks
	cur, err := readToken(file)
	if err != nil {
		release()
		return ctx, nil, fmt.Errorf("check the host fence for %s: %w", f.Env, err)
	}
	if cur > f.Token {
		release()
		return ctx, nil, fmt.Errorf("host fence for %s: token %d applied to this host, the request has %d, nothing applied: %w",
			f.Env, cur, f.Token, ErrHostFenced)
	}
	return context.WithValue(ctx, hostFenceKey{}, (*HostFence)(nil)), release, nil
}

// readToken reads a fence file's token; a missing file is 0.
func readToken(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	return n, nil
}
