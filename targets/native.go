package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/vishvananda/netlink"

	"github.com/driftless/driftless/config"
)

// NativeObserver is a transport that observes resources itself, in one
// process on the host with no process started per resource: the driftless
// agent (package agent) over an SSH session, or the local transport in
// the daemon's own process. It is the one way Observe reads a host.
//
// The answer to a query is text in the kind's own format, which the
// kind's Parse reads (the format the shell probes printed, kept when they
// were removed).
type NativeObserver interface {
	ObserveNative(ctx context.Context, qs []Query) ([]Answer, error)
}

// CheckRunner is a transport that runs command checks itself on the host
// (the agent, over the session it already holds) instead of a shell
// session per check. The result carries the exit status and stderr.
type CheckRunner interface {
	RunCheck(ctx context.Context, script string) (Result, error)
}

// Query is one resource to observe natively, as the agent needs it: no
// declared content, no command, only where to look.
type Query struct {
	Kind string `json:"kind"`
	// Name is the package, user, group, unit or kernel parameter name.
	Name string `json:"name,omitempty"`
	// Path is the host path of a file, folder or link, or the /proc/sys
	// file of a kernel parameter, or a unit's file (the transport's root
	// already applied).
	Path string `json:"path,omitempty"`
	// Conf is a kernel parameter's sysctl.d file.
	Conf string `json:"conf,omitempty"`
	// Family is a route's address family, "inet" or "inet6" (ip's -4 or
	// -6).
	Family string `json:"family,omitempty"`
	// Sum is the SHA-256 (hex) of a large declared file's content: a file
	// holding exactly it is answered with the same-content mark.
	Sum string `json:"sum,omitempty"`
	// Guard is a command's unless guard as the shell runs it (its folder
	// and DRIFTLESS_ROOT set), for a trusted revision only; Unevaluated
	// marks a declared guard left out because the revision is a preview.
	Guard       string `json:"guard,omitempty"`
	Unevaluated bool   `json:"unevaluated,omitempty"`
	// Sandbox marks a resource under the local transport's sandbox root:
	// only its files there are read (a unit file, the root's own
	// /etc/passwd or /etc/group at Path), never the machine's own
	// systemd or account databases.
	Sandbox bool `json:"sandbox,omitempty"`
}

// Answer is the agent's answer to one Query: the text the kind's Parse
// reads, or why the resource could not be observed.
type Answer struct {
	Out []byte `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
}

// nativeObserved is a kind observed natively, in one process on the host:
// query describes a resource for the host (no declared content, no
// command: only where to look), or says why the kind refuses it (an
// invalid resource, a kind a sandbox root cannot hold), which Observe
// reports as the resource's error; observeNative answers the query there
// with the text the kind's Parse reads.
type nativeObserved interface {
	query(r config.Resource, root string) (Query, error)
	observeNative(o *observation, q Query) ([]byte, error)
}

// previewQueried is a kind whose query would carry something the
// revision declares to run (a command's guard): for a revision that is
// not trusted, previewQuery describes the resource without it, and the
// answer says what was left unevaluated.
type previewQueried interface {
	previewQuery(r config.Resource, root string) (Query, error)
}

// nativeQuery describes r for a NativeObserver, or says why it cannot be
// observed.
func nativeQuery(r config.Resource, root string, preview bool) (Query, error) {
	d := Drivers()[r.Kind]
	if p, ok := d.(previewQueried); ok && preview {
		return p.previewQuery(r, root)
	}
	n, ok := d.(nativeObserved)
	if !ok {
		return Query{Kind: r.Kind}, fmt.Errorf("kind %q is not observed natively", r.Kind)
	}
	return n.query(r, root)
}

func pathQuery(q Query, r config.Resource, root string) (Query, error) {
	p, err := hostPath(root, r.Name)
	if err != nil {
		return q, err
	}
	q.Path = p
	return q, nil
}

// ObserveQueries answers every query natively, in this process, with the
// text the kind's own Parse reads. What a batch shares is
// asked once per batch (the package database, the account files, the
// firewall table, the system bus and the netlink socket); nothing starts
// a process per resource. The agent's observe request and the local
// transport both call it.
func ObserveQueries(ctx context.Context, qs []Query) []Answer {
	o := &observation{ctx: ctx, users: map[uint32]string{}, groups: map[uint32]string{}, links: map[int]string{}}
	defer o.close()
	o.packages, o.packagesErr = queryPackages(ctx, qs)
	ds := Drivers()
	out := make([]Answer, len(qs))
	for i, q := range qs {
		n, ok := ds[q.Kind].(nativeObserved)
		if !ok {
			out[i].Err = fmt.Sprintf("kind %q is not observed natively", q.Kind)
			continue
		}
		b, err := n.observeNative(o, q)
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		out[i].Out = b
	}
	return out
}

// observation is one batch of native observations on this host: what the
// batch's queries share, asked at the first query that needs it.
type observation struct {
	ctx context.Context
	// users and groups are names by id, for stat's %U and %G.
	users, groups map[uint32]string
	// packages is the package database's answer for the whole batch.
	packages    map[string][]byte
	packagesErr error
	bus         *sddbus.Conn
	busErr      error
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
	// The firewall listing, asked at the first firewall resource.
	fwDone bool
	fw     []byte
	fwErr  error
}

func (o *observation) close() {
	if o.bus != nil {
		o.bus.Close()
	}
	if o.nl != nil {
		o.nl.Close()
	}
}

// stat prints the stat line parseStat reads ("%a %u %g %U %G %F") for
// whatever is at p, without following a last symlink, and nothing when
// nothing is there.
func (o *observation) stat(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(o.statLine(fi)), nil
}

func (o *observation) statLine(fi fs.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%o %d %d %s %s %s", st.Mode&0o7777, st.Uid, st.Gid,
		idName(o.users, st.Uid, lookupUser), idName(o.groups, st.Gid, lookupGroup), fileType(fi))
}

// idName is stat's %U or %G: the name of an id, "UNKNOWN" without one.
func idName(cache map[uint32]string, id uint32, lookup func(string) (string, error)) string {
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

// regular is the shell's [ -f p ]: a regular file, links followed.
func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// onlyNative runs one step of a driver's Apply, Restore or Refresh on the
// host: the transport must apply natively (the agent, or the local
// transport).
func onlyNative(ctx context.Context, t Transport, op string, r config.Resource, st State) error {
	if n, ok := t.(NativeApplier); ok {
		_, err := n.ApplyNative(ctx, []Step{{Op: op, Resource: r, State: st}})
		return err
	}
	return fmt.Errorf("%s %s: the transport does not apply natively (only the driftless agent and the local transport do)", op, r.ID())
}
