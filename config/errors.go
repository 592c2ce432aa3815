package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one validation error at a position of a declared file.
type Error struct {
	Pos Position
	Msg string
}

// Error formats the error as "file:line:col: msg", or "file: msg" when the
// error concerns a whole file or folder rather than a place inside it.
func (e Error) Error() string {
	if e.Pos.Line <= 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// ErrorList is every error found in a revision or a daemon file. Loading
// collects them all, so that one run of `driftless validate` shows the
// whole list instead of the first problem only.
type ErrorList []Error

// Error prints one error per line, sorted by file, line and column.
func (l ErrorList) Error() string {
	sorted := append(ErrorList(nil), l...)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the errors by file, line, column, then message, so that the
// output is stable whatever order the files were read in.
func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Column != b.Pos.Column {
			return a.Pos.Column < b.Pos.Column
		}
		return a.Msg < b.Msg
	})
}

// dedupe removes identical errors, which happen when a role used by several
// hosts has the same problem on each of them.
func (l ErrorList) dedupe() ErrorList {
	seen := make(map[Error]bool, len(l))
	out := l[:0]
	for _, e := range l {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// errs collects errors while loading.
type errs struct {
	list ErrorList
}

func (c *errs) add(pos Position, format string, args ...any) {
	c.list = append(c.list, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// result returns the collected errors as an error, sorted and without
// duplicates, or nil when there were none.
func (c *errs) result() error {
	if len(c.list) == 0 {
		return nil
	}
	l := c.list.dedupe()
	l.sort()
	return l
}
