package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/vishvananda/netlink"

	"github.com/driftless/driftless/targets"
)

// sameMark is the file probe's answer for a file holding exactly the
// declared content (targets' file driver reads it).
const sameMark = "=same"

// observer answers one batch of queries on this host. It caches what the
// batch shares: user and group names by id, the package database's answer.
type observer struct {
	ctx           context.Context
	bus           *sddbus.Conn
	busErr        error
	users, groups map[uint32]string
	packages      map[string][]byte
	packagesErr   error
	// The account databases, read at the first user or group; nss is
	// set when the name service reads more than the files.
	accountsRead, nss bool
	accounts          *accounts
	accountsErr       error
	// The netlink socket, opened at the first address or route, and the
	// interface names it told.
	nl    *netlink.Handle
	nlErr error
	links map[int]string
	// The firewall probe's answer, asked at the first firewall resource.
	fwDone bool
	fw     []byte
	fwErr  error
}

// Observe answers every query natively, in this process: the answer to a
// query is what the kind's shell probe prints on the same host, so that
// the kind's own parser reads both. Packages cost one package-database
// query for the whole batch; units are asked of systemd over D-Bus; users
// and groups are read from the account files (getent's and id's answers
// with "files" sources); addresses and routes are asked over netlink;
// nothing else starts a process.
func Observe(ctx context.Context, qs []targets.Query) []targets.Answer {
	o := &observer{ctx: ctx, users: map[uint32]string{}, groups: map[uint32]string{}, links: map[int]string{}}
	defer o.close()
	o.packages, o.packagesErr = queryPackages(ctx, qs)
	out := make([]targets.Answer, len(qs))
	for i, q := range qs {
		b, err := o.observe(q)
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		out[i].Out = b
	}
	return out
}

func (o *observer) observe(q targets.Query) ([]byte, error) {
	switch q.Kind {
	case "file":
		return o.file(q)
	case "directory":
		return o.stat(q.Path)
	case "symlink":
		return symlink(q.Path)
	case "sysctl":
		return sysctl(q)
	case "service":
		return o.service(q)
	case "user", "group":
		return o.account(q)
	case "address":
		return o.address(q)
	case "route":
		return o.route(q)
	case "firewall":
		return o.firewall()
	case "package":
		if o.packagesErr != nil {
			return nil, o.packagesErr
		}
		if b, ok := o.packages[q.Name]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("package %s: not in the package query's answer", q.Name)
	}
	return nil, fmt.Errorf("kind %q is not observed by this agent", q.Kind)
}

// service prints what `systemctl show -p LoadState -p ActiveState -p
// UnitFileState` prints, asked of systemd over D-Bus, then the unit
// marker and, when the unit file exists, "unitfile=1" and its content.
func (o *observer) service(q targets.Query) ([]byte, error) {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil, errors.New("systemd is not running on this host")
	}
	if o.bus == nil && o.busErr == nil {
		// systemctl's own way: the system bus, else systemd's private
		// socket for root.
		o.bus, o.busErr = sddbus.NewWithContext(o.ctx)
	}
	if o.busErr != nil {
		return nil, fmt.Errorf("connect to systemd: %w", o.busErr)
	}
	props, err := o.bus.GetUnitPropertiesContext(o.ctx, q.Name)
	if err != nil {
		return nil, fmt.Errorf("systemd properties of %s: %w", q.Name, err)
	}
	var b bytes.Buffer
	for _, k := range []string{"LoadState", "ActiveState", "UnitFileState"} {
		v, _ := props[k].(string)
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	b.WriteString(targets.ServiceUnitMarker + "\n")
	if regular(q.Path) {
		data, err := os.ReadFile(q.Path)
		if err != nil {
			return nil, err
		}
		b.WriteString("unitfile=1\n")
		b.Write(data)
	}
	return b.Bytes(), nil
}

func (o *observer) close() {
	if o.bus != nil {
		o.bus.Close()
	}
	if o.nl != nil {
		o.nl.Close()
	}
}

// stat prints the stat(1) line of targets' statFormat ("%a %u %g %U %G
// %F") for whatever is at p, without following a last symlink, and
// nothing when nothing is there.
func (o *observer) stat(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(o.statLine(fi)), nil
}

func (o *observer) statLine(fi fs.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%o %d %d %s %s %s", st.Mode&0o7777, st.Uid, st.Gid,
		o.name(o.users, st.Uid, lookupUser), o.name(o.groups, st.Gid, lookupGroup), fileType(fi))
}

// name is stat's %U or %G: the name of an id, "UNKNOWN" without one.
func (o *observer) name(cache map[uint32]string, id uint32, lookup func(string) (string, error)) string {
	if n, ok := cache[id]; ok {
		return n
	}
	n, err := lookup(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		n = "UNKNOWN"
	}
	cache[id] = n
	return n
}

func lookupUser(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGroup(id string) (string, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return "", err
	}
	return g.Name, nil
}

// fileType is stat's %F.
func fileType(fi fs.FileInfo) string {
	m := fi.Mode()
	switch {
	case m.IsRegular() && fi.Size() == 0:
		return "regular empty file"
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character special file"
	case m&fs.ModeDevice != 0:
		return "block special file"
	}
	return "weird file"
}

// file prints the stat line, then for a regular file its content in
// base64, or the same-content mark when it hashes to q.Sum.
func (o *observer) file(q targets.Query) ([]byte, error) {
	fi, err := os.Lstat(q.Path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := []byte(o.statLine(fi) + "\n")
	if !fi.Mode().IsRegular() {
		return out, nil
	}
	data, err := os.ReadFile(q.Path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.Path, err)
	}
	if q.Sum != "" {
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) == q.Sum {
			return append(out, sameMark...), nil
		}
	}
	return base64.StdEncoding.AppendEncode(out, data), nil
}

// symlink prints "symlink" and the target, "other" for anything else at
// the path, nothing when nothing is there.
func symlink(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return []byte("other\n"), nil
	}
	target, err := os.Readlink(p)
	if err != nil {
		return nil, err
	}
	return []byte("symlink\n" + target + "\n"), nil
}

// persistedLine is the sed expression of the sysctl probe: what follows
// the first "key =" of a sysctl.d file.
var persistedLine = regexp.MustCompile(`^[^=#;]*=[[:space:]]*`)

// sysctl prints "value=" and the live value when the kernel has the
// parameter, and "persisted=" and the value in its sysctl.d file when
// there is one.
func sysctl(q targets.Query) ([]byte, error) {
	var b bytes.Buffer
	if regular(q.Path) {
		v, _ := os.ReadFile(q.Path) // an unreadable parameter reads as "", as cat's does
		fmt.Fprintf(&b, "value=%s\n", bytes.TrimRight(v, "\n"))
	}
	if regular(q.Conf) {
		data, err := os.ReadFile(q.Conf)
		if err != nil {
			return nil, err
		}
		var v string
		for line := range strings.SplitSeq(string(data), "\n") {
			if loc := persistedLine.FindStringIndex(line); loc != nil {
				v = line[loc[1]:]
				break
			}
		}
		fmt.Fprintf(&b, "persisted=%s\n", strings.TrimRight(v, "\n"))
	}
	return b.Bytes(), nil
}

// regular is the shell's [ -f p ]: a regular file, links followed.
func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// queryPackages asks the host's package database about every package of
// the batch in one process (dpkg-query, else rpm) and returns each one's
// answer in the package probe's output.
func queryPackages(ctx context.Context, qs []targets.Query) (map[string][]byte, error) {
	var names []string
	for _, q := range qs {
		if q.Kind == "package" {
			names = append(names, q.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(names))
	if _, err := exec.LookPath("dpkg-query"); err == nil {
		dpkg(ctx, names, out)
	} else if _, err := exec.LookPath("rpm"); err == nil {
		rpm(ctx, names, out)
	} else {
		return nil, errors.New("neither dpkg nor rpm is installed on this host")
	}
	return out, nil
}

// dpkg answers names with one dpkg-query: per package, "manager=apt" and
// a status and version line for each of its installed architectures, in
// dpkg's order.
func dpkg(ctx context.Context, names []string, out map[string][]byte) {
	args := append([]string{"-W", "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n", "--"}, names...)
	// A name dpkg never heard of makes it exit 1 after printing the others.
	stdout, _ := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	for _, n := range names {
		out[n] = []byte("manager=apt\n")
	}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) != 3 {
			continue
		}
		if b, ok := out[f[0]]; ok {
			out[f[0]] = fmt.Appendf(b, "status=%s\nversion=%s\n", f[1], f[2])
		}
	}
}

// rpm answers names with one rpm query. rpm also matches a name with its
// version ("pkg-1.0"): a name its answer does not mention by name is
// asked again on its own.
func rpm(ctx context.Context, names []string, out map[string][]byte) {
	const qf = "=%{NAME}\tstatus=ii\\nversion=%{EPOCH}:%{VERSION}-%{RELEASE}\\n"
	args := append([]string{"-q", "--qf", qf, "--"}, names...)
	stdout, _ := exec.CommandContext(ctx, "rpm", args...).Output()
	answered := map[string]bool{}
	for _, n := range names {
		out[n] = []byte("manager=dnf\n")
	}
	lines := strings.Split(string(stdout), "\n")
	for i, line := range lines {
		if n, ok := strings.CutPrefix(line, "package "); ok {
			answered[strings.TrimSuffix(n, " is not installed")] = true
			continue
		}
		n, status, ok := strings.Cut(strings.TrimPrefix(line, "="), "\t")
		if !ok || !strings.HasPrefix(line, "=") || i+1 >= len(lines) {
			continue
		}
		if b, known := out[n]; known {
			answered[n] = true
			out[n] = append(b, status+"\n"+lines[i+1]+"\n"...)
		}
	}
	for _, n := range names {
		if answered[n] {
			continue
		}
		one, _ := exec.CommandContext(ctx, "rpm", "-q", "--qf", "status=ii\\nversion=%{EPOCH}:%{VERSION}-%{RELEASE}\\n", "--", n).Output()
		b := []byte("manager=dnf\n")
		for line := range strings.SplitSeq(string(one), "\n") {
			if line != "" && !strings.Contains(line, "is not installed") {
				b = append(b, line+"\n"...)
			}
		}
		out[n] = b
	}
}
