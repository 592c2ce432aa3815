package targets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Drivers is the one table of resource kinds: kind name to its driver. A
// new kind is one new file and one row here. Drivers hold no state, so a
// fresh table per caller is cheap and shares nothing.
func Drivers() map[string]Driver {
	return map[string]Driver{
		"file":      &FileDriver{},
		"directory": &DirectoryDriver{},
		"symlink":   &SymlinkDriver{},
		"env":       &EnvDriver{},
		"command":   &CommandDriver{},
		"package":   &PackageDriver{},
		"service":   &ServiceDriver{},
		"artifact":  &ArtifactDriver{},
		"sysctl":    &SysctlDriver{},
		"user":      &UserDriver{},
		"group":     &GroupDriver{},
		"address":   &AddressDriver{},
		"route":     &RouteDriver{},
		"firewall":  &FirewallDriver{},
	}
}

// ShellQuote quotes s as one POSIX shell word, for callers outside this
// package that build scripts for a Transport.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shq is ShellQuote, short for the scripts of this package.
func shq(s string) string { return ShellQuote(s) }

// parseMode reads an octal mode such as "0640" or "640".
func parseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal mode between 0000 and 7777", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// normMode writes a declared or observed mode in the one form states and
// diffs use ("0640"); an unreadable mode is returned as it is, so that it
// shows up as a difference instead of vanishing.
func normMode(s string) string {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%04o", v)
}

// parseStat reads a stat line into state fields: mode, uid, gid, owner,
// group, type (file, directory, symlink or what stat said). The line is
// stat(1)'s "%a %u %g %U %G %F": mode in octal, numeric and named owner
// and group, and the file type last because it contains spaces.
func parseStat(line string) (map[string]string, error) {
	parts := strings.SplitN(strings.TrimSpace(line), " ", 6)
	if len(parts) != 6 {
		return nil, fmt.Errorf("unexpected stat output %q", line)
	}
	typ := parts[5]
	switch {
	case strings.HasPrefix(typ, "regular"):
		typ = "file"
	case typ == "symbolic link":
		typ = "symlink"
	}
	return map[string]string{
		"mode": normMode(parts[0]), "uid": parts[1], "gid": parts[2],
		"owner": parts[3], "group": parts[4], "type": typ,
	}, nil
}

// ownerDiffs returns "owner: a -> b" and "group: a -> b" lines for declared
// owner and group that differ from the observed ones. A declared name or
// number matches either the observed name or the observed id.
func ownerDiffs(owner, group string, f map[string]string) []string {
	var out []string
	if owner != "" && owner != f["owner"] && owner != f["uid"] {
		out = append(out, "owner: "+f["owner"]+" -> "+owner)
	}
	if group != "" && group != f["group"] && group != f["gid"] {
		out = append(out, "group: "+f["group"]+" -> "+group)
	}
	return out
}

// chownArg returns the argument of chown for a declared owner and group,
// or "" when neither is declared.
func chownArg(owner, group string) string {
	switch {
	case owner != "" && group != "":
		return owner + ":" + group
	case owner != "":
		return owner
	case group != "":
		return ":" + group
	}
	return ""
}

// runScript runs script on t and turns a non-zero exit into an error that
// carries the script's stderr, saying what was being done.
func runScript(ctx context.Context, t Transport, what, script string) error {
	res, err := t.Run(ctx, script, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("%s: exit %d: %s", what, res.Exit, trimOutput(res.Stderr))
	}
	return nil
}

// trimOutput keeps error messages readable: the last 2 KiB of a command's
// output, without surrounding blank lines.
func trimOutput(b []byte) string {
	const max = 2048
	b = bytes.TrimSpace(b)
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return string(b)
}

// randomHex returns n random bytes in hex, for nonces and temporary names.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}

// action picks Create for a resource that does not exist, Update otherwise,
// and NoChange when there is nothing to say.
func action(present bool, diffs []string) Action {
	switch {
	case !present:
		return Create
	case len(diffs) > 0:
		return Update
	}
	return NoChange
}
