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

// writeScript is the start of the script of WriteFiles. put writes its
// standard input's next $3 bytes to the new temporary file $2 beside $1
// (created private, so a secret is never readable by others on the way),
// checks its size and gives it mode $4 and owner $5; a failure removes the
// temporary file. mvn renames the next prepared file into place.
const writeScript = `umask 077
put() {
	if [ -d "$1" ] && [ ! -L "$1" ]; then echo "$1 is a directory" >&2; return 93; fi
	(set -C; : >"$2") || return 91
	if head -c "$3" >"$2" && [ "$(wc -c <"$2")" -eq "$3" ] && chmod "$4" "$2" && { [ -z "$5" ] || chown -- "$5" "$2"; }; then return 0; fi
	rm -f -- "$2"
	return 92
}
mvn() { [ "$k" -gt "$n" ] && mv -f -- "$1" "$2" && n=$((n+1)); }
k=0 n=0 st=0
`

// WriteFiles atomically replaces files on the host in one round trip. One
// script receives their contents back to back on its standard input; it
// writes each to a temporary file in the destination's folder, checks its
// size and gives it its mode, owner and group, stopping at the first
// failure; then it syncs the prepared files, renames them over their
// destinations in order, syncs their folders, and prints how many it
// renamed. The files before a failure are written; the others are left as
// they were, and no temporary file is left behind, a timeout included.
func (t *Transport) WriteFiles(ctx context.Context, files []targets.FileWrite) (int, error) {
	if len(files) == 0 {
		return 0, nil
	}
	var script, prepare, renames strings.Builder
	var stdin bytes.Buffer
	var temps, dirs []string
	seenDir := map[string]bool{}
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
		fmt.Fprintf(&prepare, "put %s %s %d %s %s && k=%d && ", targets.ShellQuote(f.Path), targets.ShellQuote(tmp), len(f.Data), octalMode(f.Mode), targets.ShellQuote(f.ChownArg()), i+1)
		fmt.Fprintf(&renames, "mvn %s %s && ", targets.ShellQuote(tmp), targets.ShellQuote(f.Path))
		stdin.Write(f.Data)
	}
	all := shellWords(temps)
	fmt.Fprintf(&script, `{ %s:; } || st=$?
set --
i=0
for f in %s; do [ "$i" -lt "$k" ] && set -- "$@" "$f"; i=$((i+1)); done
if [ "$#" -gt 0 ] && { sync -- "$@" 2>/dev/null || sync; }; then %s:; fi
if [ "$n" -lt %d ]; then rm -f -- %s; fi
if [ "$n" -gt 0 ]; then sync -- %s 2>/dev/null; fi
echo "$n"
if [ "$n" -lt "$k" ]; then exit 92; fi
exit "$st"`, prepare.String(), all, renames.String(), len(files), all, shellWords(dirs))
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
