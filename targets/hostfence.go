package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	file, release, err := lockHostFence(*f)
	if err != nil {
		return ctx, nil, fmt.Errorf("check the host fence for %s: %w", f.Env, err)
	}
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

// lockHostFence takes the host's fence lock of f's environment (flock on
// Dir/Env.lock, the fence script's lock too) and returns the fence file,
// Dir/Env, and the release of the lock.
func lockHostFence(f HostFence) (file string, release func(), err error) {
	if f.Env == "" || strings.ContainsAny(f.Env, "/\x00") || f.Env == "." || f.Env == ".." {
		return "", nil, fmt.Errorf("bad environment %q", f.Env)
	}
	file = filepath.Join(f.Dir, f.Env)
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(file+".lock", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return "", nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return "", nil, fmt.Errorf("lock: %w", err)
	}
	return file, func() { lock.Close() }, nil // closing the only descriptor unlocks
}

// The events of a host's write record (FenceMark.Event).
const (
	FenceBegin = "begin"
	FenceEnd   = "end"
)

// A host's write record (Dir/Env.log) past HostLogMax bytes keeps only
// its newest HostLogKeep lines.
const (
	HostLogMax  = 64 << 10
	HostLogKeep = 400
)

// FenceMark is one event of a replica's writes to a host in cluster
// mode, recorded on the host under the fence lock: the begin of an
// interval of writes (checked against the host's fence first) or its end.
type FenceMark struct {
	Fence HostFence `json:"fence"`
	// Event is FenceBegin or FenceEnd.
	Event string `json:"event"`
	// Op is what the writes are (the reconciler's apply, rollback or
	// recover), Replica who makes them.
	Op      string `json:"op"`
	Replica string `json:"replica"`
}

// HostFencer is a transport that records its host's fence events in Go
// on the host (MarkHostFence: the local transport in process, the agent
// over its session), with no shell started.
type HostFencer interface {
	MarkHostFence(ctx context.Context, m FenceMark) error
}

// MarkHostFence records m on this host under the fence lock. A begin is
// refused (ErrHostFenced, nothing recorded) when the fence file Dir/Env
// holds a higher token than m's; otherwise the file is raised to m's
// token, the record is cut to its newest HostLogKeep lines when past
// HostLogMax, and the begin line appended. An end appends its line. A
// line is "EVENT UNIXNANOS TOKEN OP "REPLICA"", the host's clock.
func MarkHostFence(m FenceMark) error {
	if (m.Event != FenceBegin && m.Event != FenceEnd) || m.Op == "" || strings.ContainsAny(m.Op, " \n") {
		return fmt.Errorf("record on the host fence: bad event %q or operation %q", m.Event, m.Op)
	}
	f := m.Fence
	file, release, err := lockHostFence(f)
	if err != nil {
		return fmt.Errorf("record on the host fence for %s: %w", f.Env, err)
	}
	defer release()
	if m.Event == FenceBegin {
		cur, err := readToken(file)
		if err != nil {
			return fmt.Errorf("check the host fence for %s: %w", f.Env, err)
		}
		if cur > f.Token {
			return fmt.Errorf("host fence for %s: token %d applied to this host, this replica has %d: %w", f.Env, cur, f.Token, ErrHostFenced)
		}
		if cur < f.Token {
			if err := replaceFile(file, []byte(strconv.FormatInt(f.Token, 10)+"\n")); err != nil {
				return fmt.Errorf("raise the host fence for %s: %w", f.Env, err)
			}
		}
		if err := trimHostLog(file + ".log"); err != nil {
			return fmt.Errorf("cut the write record for %s: %w", f.Env, err)
		}
	}
	line := fmt.Sprintf("%s %d %d %s %s\n", m.Event, time.Now().UnixNano(), f.Token, m.Op, strconv.Quote(m.Replica))
	log, err := os.OpenFile(file+".log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record on the host fence for %s: %w", f.Env, err)
	}
	_, err = log.WriteString(line)
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record on the host fence for %s: %w", f.Env, err)
	}
	return nil
}

// trimHostLog keeps only the newest HostLogKeep lines of a write record
// larger than HostLogMax.
func trimHostLog(file string) error {
	st, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() <= HostLogMax) {
		return nil
	}
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	lines = lines[max(len(lines)-HostLogKeep, 0):]
	return replaceFile(file, []byte(strings.Join(lines, "")))
}

// replaceFile puts data in file through a temporary file beside it,
// renamed over it.
func replaceFile(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
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
