package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/driftless/driftless/targets"
)

// accounts is what the user and group probes read, from the account
// databases the way getent and id read them with "files" sources: the
// first entry of a name or an id wins, comments and blank lines are
// skipped. It is read once per batch.
type accounts struct {
	passwd [][]string // name:passwd:uid:gid:gecos:dir:shell
	group  [][]string // name:passwd:gid:members
}

// nsswitch is the host's name-service configuration file.
const nsswitch = "/etc/nsswitch.conf"

// filesOnly reports whether the host's name service reads users and groups
// only from the files (and from systemd, which adds only root, nobody and
// services' dynamic users, none of which driftless manages): then the
// files are what getent and id answer.
func filesOnly(conf string) bool {
	data, err := os.ReadFile(conf)
	if err != nil {
		return os.IsNotExist(err) // glibc's default without the file: files
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		db, srcs, ok := strings.Cut(line, ":")
		if !ok || (strings.TrimSpace(db) != "passwd" && strings.TrimSpace(db) != "group") {
			continue
		}
		for _, s := range strings.Fields(srcs) {
			if s != "files" && s != "systemd" && !strings.HasPrefix(s, "[") {
				return false
			}
		}
	}
	return true
}

// readDB reads an account database: its entries split on ":", each with
// at least n fields.
func readDB(path string, n int) ([][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out [][]string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= n {
			out = append(out, f)
		}
	}
	return out, nil
}

// loadAccounts reads the passwd and group databases under etc.
func loadAccounts(etc string) (*accounts, error) {
	p, err := readDB(etc+"/passwd", 7)
	if err != nil {
		return nil, err
	}
	g, err := readDB(etc+"/group", 4)
	if err != nil {
		return nil, err
	}
	return &accounts{passwd: p, group: g}, nil
}

func find(db [][]string, field int, v string) []string {
	for _, e := range db {
		if e[field] == v {
			return e
		}
	}
	return nil
}

// groupName is id's name for a group id: the first group with it, else
// the number.
func (a *accounts) groupName(gid string) string {
	if g := find(a.group, 2, gid); g != nil {
		return g[0]
	}
	return gid
}

// userLines prints what the user probe prints: getent's passwd line, then
// `id -gn` (the primary group's name) and `id -Gn` (the primary group,
// then every group listing the user as a member, each id once).
func (a *accounts) userLines(name string) []byte {
	p := find(a.passwd, 0, name)
	if p == nil {
		return nil
	}
	gids := []string{p[3]}
	for _, g := range a.group {
		if slices.Contains(strings.Split(g[3], ","), name) && !slices.Contains(gids, g[2]) {
			gids = append(gids, g[2])
		}
	}
	names := make([]string, len(gids))
	for i, gid := range gids {
		names[i] = a.groupName(gid)
	}
	return fmt.Appendf(nil, "passwd=%s\nprimary=%s\ngroups=%s\n", strings.Join(p[:7], ":"), names[0], strings.Join(names, " "))
}

// groupLine prints what the group probe prints: getent's group line.
func (a *accounts) groupLine(name string) []byte {
	g := find(a.group, 0, name)
	if g == nil {
		return nil
	}
	return fmt.Appendf(nil, "group=%s\n", strings.Join(g[:4], ":"))
}

// account answers a user or group query. A host whose name service reads
// other sources (LDAP, NIS...) is asked with getent and id, as the probe
// does: only there does an account cost processes.
func (o *observer) account(q targets.Query) ([]byte, error) {
	if !o.accountsRead {
		o.accountsRead, o.nss = true, !filesOnly(nsswitch)
		if !o.nss {
			o.accounts, o.accountsErr = loadAccounts("/etc")
		}
	}
	switch {
	case o.nss:
		return nssAccount(o.ctx, q)
	case o.accountsErr != nil:
		return nil, o.accountsErr
	case q.Kind == "user":
		return o.accounts.userLines(q.Name), nil
	}
	return o.accounts.groupLine(q.Name), nil
}

// nssAccount runs the probe's own commands.
func nssAccount(ctx context.Context, q targets.Query) ([]byte, error) {
	db := "passwd"
	if q.Kind == "group" {
		db = "group"
	}
	e, err := exec.CommandContext(ctx, "getent", db, q.Name).Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); ok {
			return nil, nil // not found
		}
		return nil, fmt.Errorf("getent %s %s: %w", db, q.Name, err)
	}
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(e))
	if sc.Scan() {
		fmt.Fprintf(&b, "%s=%s\n", db, sc.Text())
	}
	if q.Kind == "user" {
		primary, _ := exec.CommandContext(ctx, "id", "-gn", q.Name).Output()
		all, _ := exec.CommandContext(ctx, "id", "-Gn", q.Name).Output()
		fmt.Fprintf(&b, "primary=%s\ngroups=%s\n", bytes.TrimRight(primary, "\n"), bytes.TrimRight(all, "\n"))
	}
	return b.Bytes(), nil
}
