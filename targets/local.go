package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Local is the transport to the machine driftless itself runs on. Every
// managed absolute path is placed under its root folder, so that demos and
// tests can work in a sandbox; an empty root means the real filesystem.
type Local struct {
	root string
	// beforeRename, when set, runs after the temporary file of WriteFile
	// is complete and synced and before it is renamed over the
	// destination. Tests set it to inject a failure at the one moment
	// where a careless writer would leave a torn file behind.
	beforeRename func(tmp string) error
}

var (
	_ Transport = (*Local)(nil)
	_ Redialer  = (*Local)(nil)
)

// NewLocal returns the local transport placing every path under root
// ("" for the real filesystem).
func NewLocal(root string) *Local {
	return &Local{root: root}
}

// Root returns the folder every managed path is placed under.
func (l *Local) Root() string { return l.root }

// Close does nothing: the local transport holds no connection.
func (l *Local) Close() error { return nil }

// Redial returns the transport itself: the local machine cannot become
// unreachable through a network change.
func (l *Local) Redial(context.Context) (Transport, error) { return l, nil }

// maxArgScript is the longest script passed to sh -c as an argument.
const maxArgScript = 64 << 10

// waitDelay bounds how long Run waits for the output pipes once the shell
// has exited or been killed, so a background child that keeps them open
// cannot hang the daemon.
const waitDelay = 5 * time.Second

// Run runs script with `sh -c`, feeding it stdin, with DRIFTLESS_ROOT set to
// the transport's root. The shell runs in its own process group, and the
// whole group is killed when ctx ends, so that no child outlives it.
//
// A script longer than maxArgScript is run from a temporary file instead
// of the command line, whose single arguments Linux limits to 128 KiB: a
// host with a thousand resources makes an Observe script that long.
func (l *Local) Run(ctx context.Context, script string, stdin []byte) (Result, error) {
	args := []string{"-c", script}
	if len(script) > maxArgScript {
		f, err := os.CreateTemp("", "driftless-script-*.sh")
		if err != nil {
			return Result{}, fmt.Errorf("run local script: %w", err)
		}
		defer os.Remove(f.Name())
		_, err = f.WriteString(script)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return Result{}, fmt.Errorf("run local script: write it to a file: %w", err)
		}
		args = []string{f.Name()}
	}
	cmd := exec.CommandContext(ctx, "sh", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "DRIFTLESS_ROOT="+l.root)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run local script: %w", ctx.Err())
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exitErr):
		res.Exit = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Report a killed shell the way a shell would: 128 + signal.
			res.Exit = 128 + int(ws.Signal())
		}
		return res, nil
	default:
		return res, fmt.Errorf("run local script: %w", err)
	}
}

// hostPath places the absolute host path p under root. A relative path is
// an error, and ".." elements are cleaned against "/" first so that no path
// can climb out of the root.
//
// Under a root, the folders leading to p are resolved inside the root as
// if it were "/" (securejoin): a symlink among them, even one declared by
// the revision and pointing at an absolute path of the daemon's machine,
// leads to the place of that name under the root, never out of it. The
// last element is not resolved, so that a symlink there is seen, replaced
// or refused as such. Writes run right after the path is resolved, within
// the same apply of one resource.
//
// On a real host (no root) paths are used as they are: a symlinked parent
// folder is followed, since it is the host's own layout (an /etc/app that
// links to /opt/app/etc) and the host's root may write anywhere anyway.
func hostPath(root, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	clean := filepath.Clean(p)
	if root == "" {
		return clean, nil
	}
	if clean == "/" {
		return root, nil
	}
	dir, err := securejoin.SecureJoin(root, filepath.Dir(clean))
	if err != nil {
		return "", fmt.Errorf("resolve %s inside the sandbox root: %w", p, err)
	}
	return filepath.Join(dir, filepath.Base(clean)), nil
}

// WriteFile atomically replaces path (under the root) with data and mode,
// as WriteFiles does for one file.
func (l *Local) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	_, err := l.WriteFiles(ctx, []FileWrite{{Path: path, Data: data, Mode: mode}})
	return err
}

// WriteFiles atomically replaces each file (under the root) in order. Each
// is first written to a temporary file in its folder, given its mode and
// owner, and synced; then the prepared files are renamed over their
// destinations in order, and each folder is synced once so that the
// renames survive a crash. At the first failure the files before it are
// written and the others are left exactly as they were, with no
// temporary file behind. An existing destination's owner and group are
// kept, when the process is allowed to set them, unless others are given.
// With a fence in ctx (WithHostFence), the whole call is refused when the
// host saw a higher token, and the host's fence lock is held meanwhile.
func (l *Local) WriteFiles(ctx context.Context, files []FileWrite) (int, error) {
	ctx, release, err := holdHostFence(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	var temps, dsts []string
	var prepErr error
	for _, f := range files {
		dst, err := hostPath(l.root, f.Path)
		var tmp string
		if err == nil {
			tmp, err = prepareTemp(dst, f)
		}
		if err != nil {
			prepErr = fmt.Errorf("write %s: %w", f.Path, err)
			break
		}
		temps, dsts = append(temps, tmp), append(dsts, dst)
	}
	done := 0
	err = nil
	for i, tmp := range temps {
		if err = l.rename(ctx, tmp, dsts[i]); err != nil {
			err = fmt.Errorf("write %s: %w", files[i].Path, err)
			break
		}
		done++
	}
	for _, tmp := range temps[done:] {
		_ = os.Remove(tmp)
	}
	synced := map[string]bool{}
	for i, dst := range dsts[:done] {
		dir := filepath.Dir(dst)
		if synced[dir] {
			continue
		}
		synced[dir] = true
		if serr := syncDir(dir); serr != nil && err == nil {
			err = fmt.Errorf("write %s: %w", files[i].Path, serr)
		}
	}
	if err == nil {
		err = prepErr
	}
	return done, err
}

// rename moves a prepared temporary file over its destination, unless the
// context has ended.
func (l *Local) rename(ctx context.Context, tmp, dst string) error {
	if l.beforeRename != nil {
		if err := l.beforeRename(tmp); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename temporary file: %w", err)
	}
	return nil
}

// prepareTemp writes f to a new temporary file beside dst, with its mode
// and owner, synced and closed, and returns its name. On failure nothing
// is left behind.
func prepareTemp(dst string, w FileWrite) (tmp string, err error) {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+tempBase(filepath.Base(dst))+".driftless-*")
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("folder %s does not exist (declare a directory resource for it): %w", dir, err)
	}
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	tmp = f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(w.Data); err != nil {
		return "", fmt.Errorf("write temporary file: %w", err)
	}
	// Chmod explicitly: CreateTemp makes 0600 files and the umask must not
	// decide the declared mode.
	if err := f.Chmod(w.Mode); err != nil {
		return "", fmt.Errorf("chmod temporary file: %w", err)
	}
	if err := keepOwner(f, dst); err != nil {
		return "", err
	}
	if err := setOwner(f, w.Owner, w.Group); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync temporary file: %w", err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close temporary file: %w", err)
	}
	return tmp, nil
}

// setOwner gives f the owner and group given (names or numeric ids, as
// chown takes them); an empty one is left as it is.
func setOwner(f *os.File, owner, group string) error {
	if owner == "" && group == "" {
		return nil
	}
	uid, gid, err := resolveOwner(owner, group)
	if err != nil {
		return fmt.Errorf("chown temporary file: %w", err)
	}
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("chown temporary file to %s: %w", chownArg(owner, group), err)
	}
	return nil
}

// resolveID turns a user or group name, or a numeric id, into an id (-1
// for none).
func resolveID(name string, lookup func(string) (string, error)) (int, error) {
	if name == "" {
		return -1, nil
	}
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	s, err := lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// keepOwner gives the temporary file the owner and group of the file it
// replaces, so that rewriting a file owned by a service account does not
// hand it to root. Lacking the permission to do so is not an error: the
// file then belongs to the daemon's user, as any file it creates does.
func keepOwner(f *os.File, dst string) error {
	fi, err := os.Lstat(dst)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("chown temporary file: %w", err)
	}
	return nil
}

// syncDir fsyncs a folder so that a rename inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open folder for sync: %w", err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync folder: %w", err)
	}
	return d.Close()
}

// tempBase shortens a file name so that a temporary name made from it
// (a dot, the name, a suffix of about 20 bytes) stays under the 255-byte
// limit of a name.
func tempBase(name string) string {
	const max = 200
	if len(name) > max {
		return name[:max]
	}
	return name
}

// resolveOwner turns an owner and a group (names or numeric ids, or "")
// into ids, -1 for one not given. A name the account files do not hold is
// asked of the name service with getent (LDAP, NIS...), as chown(1) would
// resolve it: the binary is built without cgo, so os/user reads only the
// files.
func resolveOwner(owner, group string) (uid, gid int, err error) {
	uid, err = resolveID(owner, func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return getentID("passwd", n, err)
		}
		return u.Uid, nil
	})
	if err != nil {
		return 0, 0, err
	}
	gid, err = resolveID(group, func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return getentID("group", n, err)
		}
		return g.Gid, nil
	})
	if err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// getentID asks getent (no shell) for the id of name in the passwd or
// group database; notFound is the error returned when it has none.
func getentID(db, name string, notFound error) (string, error) {
	out, err := exec.Command("getent", db, "--", name).Output()
	if err != nil {
		return "", notFound
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) < 3 || f[0] != name {
		return "", notFound
	}
	if _, err := strconv.Atoi(f[2]); err != nil {
		return "", fmt.Errorf("getent %s %s: id %q is not a number", db, name, f[2])
	}
	return f[2], nil
}

var (
	_ NativeObserver = (*Local)(nil)
	_ NativeApplier  = (*Local)(nil)
	_ HostFencer     = (*Local)(nil)
)

// MarkHostFence implements HostFencer in this process: m's fence folder
// has the transport's root applied already (HostFence.Dir).
func (l *Local) MarkHostFence(ctx context.Context, m FenceMark) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return MarkHostFence(m)
}

// ObserveNative implements NativeObserver: the kinds' native observation
// in this process, on the paths under the transport's root.
func (l *Local) ObserveNative(ctx context.Context, qs []Query) ([]Answer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ObserveQueries(ctx, qs), nil
}

// ApplyNative implements NativeApplier: the native kinds' applies in this
// process, under the transport's root.
func (l *Local) ApplyNative(ctx context.Context, steps []Step) (int, error) {
	h := NewHost(l.root)
	defer h.Close()
	return h.Apply(ctx, steps)
}
