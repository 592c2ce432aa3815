package targets

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/driftless/driftless/config"
)

// Contents is a driver whose resource is kept as a body (a file's bytes,
// an env file, a unit file). Desired returns the body applying r would
// leave, given the observed state, and false when there is none (the
// resource is to be absent, or its body is not managed).
type Contents interface {
	Desired(r config.Resource, observed State) ([]byte, bool)
}

// DeclaredDiff is a driver whose Diff holds only what the revision
// declares, nothing read from the host, so that it may be published as it
// is (a command: what would run, and why).
type DeclaredDiff interface {
	DiffIsDeclared()
}

// Summary says what c changes without publishing anything read from the
// host: the names of the fields that change ("mode changes") and, for a
// body, its size, line count and a short hash keyed with key, before and
// after ("content: 120 bytes, 4 lines, hmac 3f2a91c0d4e5 -> ..."). A
// reviewer sees that and how much changes; the hash tells equal bodies
// apart without letting anyone who lacks the key guess a short secret from
// it. A DeclaredDiff driver's diff is returned as it is. Of a secret
// resource (config.Resource.IsSecret) only the hash is given: its size
// would tell a password's length.
func Summary(d Driver, r config.Resource, c Change, key []byte) string {
	if _, ok := d.(DeclaredDiff); ok {
		return c.Diff
	}
	var lines []string
	for _, l := range strings.Split(c.Diff, "\n") {
		if name, ok := fieldName(l); ok {
			lines = append(lines, name+" changes")
		}
	}
	if cd, ok := d.(Contents); ok {
		var old []byte
		if c.Before.Present && c.Before.Fields["type"] != "directory" {
			old = c.Before.Content
		}
		want, has := cd.Desired(r, c.Before)
		if !has || c.Action == Delete {
			want = nil
		}
		if (old != nil) != (want != nil) || !bytes.Equal(old, want) {
			lines = append(lines, "content: "+bodySummary(old, key, !r.IsSecret())+" -> "+bodySummary(want, key, !r.IsSecret()))
		}
	}
	return strings.Join(lines, "\n")
}

// fieldName reads the field of a "field: old -> new" line of a diff; the
// lines of a unified diff, which quote the body, never match.
func fieldName(line string) (string, bool) {
	name, rest, ok := strings.Cut(line, ": ")
	if !ok || name == "" || !strings.Contains(rest, " -> ") {
		return "", false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && c != '_' {
			return "", false
		}
	}
	return name, true
}

// bodySummary is "(none)" or the size, line count and keyed hash of b;
// the hash alone without sizes.
func bodySummary(b []byte, key []byte, sizes bool) string {
	if b == nil {
		return "(none)"
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	hash := "hmac " + hex.EncodeToString(mac.Sum(nil))[:12]
	if !sizes {
		return hash
	}
	lines := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		lines++
	}
	return fmt.Sprintf("%d bytes, %d lines, %s", len(b), lines, hash)
}
