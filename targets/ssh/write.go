package ssh

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	pathpkg "path"
	"strings"
	"time"
)

// WriteFile atomically replaces path on the host: the data is written to a
// temporary file in the same folder (created private, so a secret is never
// readable by others on the way), its size checked, synced, given its mode,
// then renamed over path. On any failure, a timeout included, the temporary
// file is removed and path is left as it was.
func (t *Transport) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return fmt.Errorf("write %s on %s: not an absolute file path", path, t.cfg.Address)
	}
	// The client names the temporary file, so that it can remove it even
	// when the remote script was killed on a timeout.
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("write %s on %s: %w", path, t.cfg.Address, err)
	}
	dir, base := pathpkg.Split(path)
	tmp := fmt.Sprintf("%s.%s.driftless-%x", dir, base, suffix)
	script := fmt.Sprintf(`p=%s tmp=%s
if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; exit 93; fi
umask 077
(set -C; : >"$tmp") || exit 91
if cat >"$tmp" && [ "$(wc -c <"$tmp")" -eq %d ] && chmod %s "$tmp" && { sync -- "$tmp" 2>/dev/null || sync; } && mv -f -- "$tmp" "$p"; then
	exit 0
fi
rm -f -- "$tmp"
exit 92`, shellQuote(path), shellQuote(tmp), len(data), octalMode(mode))
	res, err := t.Run(ctx, script, data)
	if err != nil {
		t.removeLeftover(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("write %s on %s: exit %d: %s", path, t.cfg.Address, res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// removeLeftover removes the temporary file of a write that was cut off,
// with its own short timeout; if the host is unreachable there is nothing
// more to do, and path itself was never touched.
func (t *Transport) removeLeftover(tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := t.Run(ctx, "rm -f -- "+shellQuote(tmp), nil); err != nil {
		t.log.Warn().Err(err).Str("file", tmp).Msg("could not remove the temporary file of a failed write")
	}
}

// octalMode renders permission and special bits for chmod.
func octalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
