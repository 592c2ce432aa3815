package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	pathpkg "path"
	"strconv"
	"strings"
	"time"

	"github.com/driftless/driftless/targets"
)

// WriteFile atomically replaces path on the host, as WriteFiles does for
// one file.
func (t *Transport) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	_, err := t.WriteFiles(ctx, []targets.FileWrite{{Path: path, Data: data, Mode: mode}})
	return err
}

// writeScript is the start of the script of WriteFiles. Every process
// the script starts costs the host a fork and an exec, the largest part of
// a write's time on a busy host, so the per-file work is one head and one
// mv; the sizes, modes and owners of the whole batch are checked and set
// with one stat, one chmod per mode and one chown per owner.
//
// put writes its standard input's next $3 bytes to the new temporary file
// $2 beside $1. The file is created exclusively (set -C: an existing file
// or a planted symlink there fails the write) and private (umask 077), so
// a secret is never readable by others on the way. fix gives one prepared
// file mode $2 and owner $3: it finds the file at fault when a batched
// chmod or chown failed. mvn renames the next prepared file into place.
const writeScript = `umask 077
set -C
put() {
	if [ -d "$1" ] && [ ! -L "$1" ]; then echo "$1 is a directory" >&2; return 93; fi
	head -c "$3" >"$2" && return 0
	rm -f -- "$2"
	return 91
}
fix() { chmod "$2" "$1" && { [ -z "$3" ] || chown -- "$3" "$1"; }; }
mvn() { [ "$k" -gt "$n" ] && mv -f -- "$1" "$2" && n=$((n+1)); }
k=0 n=0 st=0
`

// WriteFiles atomically replaces files on the host in one round trip. One
// script receives their contents back to back on its standard input; it
// writes each to a temporary file in the destination's folder, stopping at
// the first failure; it checks the sizes of the prepared files and gives
// them their modes, owners and groups (keeping the files before the first
// that fails); then it syncs them, renames them over their destinations in
// order, syncs their folders, and prints how many it renamed. The files
// before a failure are written; the others are left as they were, and no
// temporary file is left behind, a timeout included.
func (t *Transport) WriteFiles(ctx context.Context, files []targets.FileWrite) (int, error) {
	if len(files) == 0 {
		return 0, nil
	}
	var script, prepare, sizes, fixes, renames strings.Builder
	var stdin bytes.Buffer
	var temps, dirs, modes, owners []string
	seenDir := map[string]bool{}
	byMode, byOwner := map[string][]int{}, map[string][]int{}
	script.WriteString(writeScript)
	for i, f := range files {
		if !strings.HasPrefix(f.Path, "/") || strings.HasSuffix(f.Path, "/") {
			return 0, fmt.Errorf("write %s on %s: not an absolute file path", f.Path, t.cfg.Address)
		}
		// The client names the temporary files, so that it can remove
		// them even when the remote script was killed on a timeout.
		suffix := make([]byte, 8)
		if _, err := rand.Read(suffix); err != nil {
			return 0, fmt.Errorf("write %s on %s: %w", f.Path, t.cfg.Address, err)
		}
		dir, base := pathpkg.Split(f.Path)
		tmp := fmt.Sprintf("%s.%s.driftless-%x", dir, base, suffix)
		temps = append(temps, tmp)
		if !seenDir[dir] {
			seenDir[dir] = true
			dirs = append(dirs, dir)
		}
		mode, owner := octalMode(f.Mode), f.ChownArg()
		if byMode[mode] == nil {
			modes = append(modes, mode)
		}
		byMode[mode] = append(byMode[mode], i)
		if owner != "" {
			if byOwner[owner] == nil {
				owners = append(owners, owner)
			}
			byOwner[owner] = append(byOwner[owner], i)
		}
		fmt.Fprintf(&prepare, "put %s %s %d && k=%d && ", targets.ShellQuote(f.Path), targets.ShellQuote(tmp), len(f.Data), i+1)
		fmt.Fprintf(&sizes, "%d) w=%d;; ", i+1, len(f.Data))
		fmt.Fprintf(&fixes, "[ \"$k\" -ge %d ] && fix %s %s %s && c=%d && ", i+1, targets.ShellQuote(tmp), mode, targets.ShellQuote(owner), i+1)
		fmt.Fprintf(&renames, "mvn %s %s && ", targets.ShellQuote(tmp), targets.ShellQuote(f.Path))
		stdin.Write(f.Data)
	}
	all := shellWords(temps)
	// prepared sets the positional parameters to the temporary files of
	// the indexes given that are among the first k.
	prepared := func(idx []int) string {
		var b strings.Builder
		b.WriteString("set --; ")
		for _, i := range idx {
			fmt.Fprintf(&b, "[ %d -le \"$k\" ] && set -- \"$@\" %s; ", i+1, targets.ShellQuote(temps[i]))
		}
		return b.String()
	}
	var batch strings.Builder
	for _, m := range modes {
		fmt.Fprintf(&batch, "%s[ \"$#\" -eq 0 ] || chmod %s \"$@\" 2>/dev/null || a=1\n", prepared(byMode[m]), m)
	}
	for _, o := range owners {
		fmt.Fprintf(&batch, "%s[ \"$#\" -eq 0 ] || chown -- %s \"$@\" 2>/dev/null || a=1\n", prepared(byOwner[o]), targets.ShellQuote(o))
	}
	fmt.Fprintf(&script, `{ %s:; } || st=$?
set --
i=0
for f in %s; do [ "$i" -lt "$k" ] && set -- "$@" "$f"; i=$((i+1)); done
c=0
if [ "$#" -gt 0 ]; then
	for s in $(stat -c %%s -- "$@" 2>/dev/null); do
		case $((c+1)) in %sesac
		[ "$s" = "$w" ] || break
		c=$((c+1))
	done
fi
if [ "$c" -lt "$k" ]; then echo "a prepared file does not have its size" >&2; k=$c st=92; fi
a=0
%sif [ "$a" -ne 0 ]; then
	c=0
	{ %s:; }
	if [ "$c" -lt "$k" ]; then k=$c st=92; fi
fi
set --
i=0
for f in %s; do [ "$i" -lt "$k" ] && set -- "$@" "$f"; i=$((i+1)); done
if [ "$#" -gt 0 ] && { sync -- "$@" 2>/dev/null || sync; }; then %s:; fi
if [ "$n" -lt %d ]; then rm -f -- %s; fi
if [ "$n" -gt 0 ]; then sync -- %s 2>/dev/null; fi
echo "$n"
if [ "$n" -lt "$k" ]; then exit 92; fi
exit "$st"`, prepare.String(), all, sizes.String(), batch.String(), fixes.String(), all, renames.String(), len(files), all, shellWords(dirs))
	what := files[0].Path
	if len(files) > 1 {
		what = fmt.Sprintf("%d files from %s", len(files), files[0].Path)
	}
	res, err := t.Run(ctx, script.String(), stdin.Bytes())
	if err != nil {
		t.removeLeftovers(temps)
		return 0, fmt.Errorf("write %s: %w", what, err)
	}
	fields := strings.Fields(string(res.Stdout))
	n := -1
	if len(fields) > 0 {
		n, _ = strconv.Atoi(fields[len(fields)-1])
	}
	if n < 0 || n > len(files) {
		return 0, fmt.Errorf("write %s on %s: exit %d, unexpected output %q: %s", what, t.cfg.Address, res.Exit, res.Stdout, strings.TrimSpace(string(res.Stderr)))
	}
	if res.Exit != 0 || n < len(files) {
		failed := files[min(n, len(files)-1)].Path
		return n, fmt.Errorf("write %s on %s: exit %d: %s", failed, t.cfg.Address, res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	return n, nil
}

// removeLeftovers removes the temporary files of a write that was cut
// off, with its own short timeout; if the host is unreachable there is
// nothing more to do, and the destinations not yet renamed over were never
// touched.
func (t *Transport) removeLeftovers(temps []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := t.Run(ctx, "rm -f -- "+shellWords(temps), nil); err != nil {
		t.log.Warn().Err(err).Strs("files", temps).Msg("could not remove the temporary files of a failed write")
	}
}

// shellWords quotes each of ss as one shell word, joined by spaces.
func shellWords(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = targets.ShellQuote(s)
	}
	return strings.Join(quoted, " ")
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
