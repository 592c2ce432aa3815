package targets

import (
	"strconv"
	"strings"
)

// diffContext is the number of unchanged lines shown around each change,
// the default of diff -u and git diff.
const diffContext = 3

// maxEditDistance bounds the work of the line diff. Past it the middle of
// the two texts (after their common start and end) is shown as wholly
// removed and wholly added: still a correct diff, only a less clever one,
// and it keeps a rewritten large file from costing quadratic memory.
const maxEditDistance = 1000

// edit is one line of an edit script: ' ' kept, '-' removed, '+' added.
// a and b count the lines of the old and new text before this one.
type edit struct {
	op   byte
	line string
	a, b int
}

// UnifiedDiff returns the unified diff (3 lines of context) turning old
// into new, with headers "--- oldName" and "+++ newName", or "" when the
// texts are equal. A last line without a newline is marked the way diff
// and git mark it.
func UnifiedDiff(oldName, newName string, old, new []byte) string {
	if string(old) == string(new) {
		return ""
	}
	edits := lineEdits(splitLines(string(old)), splitLines(string(new)))
	var b strings.Builder
	b.WriteString("--- " + oldName + "\n+++ " + newName + "\n")
	for i := 0; i < len(edits); {
		for i < len(edits) && edits[i].op == ' ' {
			i++
		}
		if i == len(edits) {
			break
		}
		start := max(i-diffContext, 0)
		end := i + 1
		for j := i + 1; j < len(edits); {
			if edits[j].op != ' ' {
				end = j + 1
				j++
				continue
			}
			k := j
			for k < len(edits) && edits[k].op == ' ' {
				k++
			}
			if k == len(edits) || k-j > 2*diffContext {
				break
			}
			j = k
		}
		stop := min(end+diffContext, len(edits))
		writeHunk(&b, edits[start:stop])
		i = stop
	}
	return b.String()
}

func writeHunk(b *strings.Builder, h []edit) {
	var na, nb int
	for _, e := range h {
		if e.op != '+' {
			na++
		}
		if e.op != '-' {
			nb++
		}
	}
	b.WriteString("@@ -" + hunkRange(h[0].a, na) + " +" + hunkRange(h[0].b, nb) + " @@\n")
	for _, e := range h {
		b.WriteByte(e.op)
		b.WriteString(e.line)
		if !strings.HasSuffix(e.line, "\n") {
			b.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange writes one side of a hunk header as diff does: "start,count",
// with the count left out when it is 1, and an empty side numbered after
// the line it follows.
func hunkRange(before, n int) string {
	switch n {
	case 0:
		return strconv.Itoa(before) + ",0"
	case 1:
		return strconv.Itoa(before + 1)
	}
	return strconv.Itoa(before+1) + "," + strconv.Itoa(n)
}

// splitLines cuts s after each newline; a last line without one is kept.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// lineEdits returns a shortest edit script from a to b: the common start
// and end are trimmed, and the middle is diffed with Myers' algorithm.
func lineEdits(a, b []string) []edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ops := make([]byte, 0, len(a)+len(b))
	for range pre {
		ops = append(ops, ' ')
	}
	ops = append(ops, myers(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for range suf {
		ops = append(ops, ' ')
	}
	edits := make([]edit, 0, len(ops))
	x, y := 0, 0
	for _, op := range ops {
		e := edit{op: op, a: x, b: y}
		switch op {
		case ' ':
			e.line = a[x]
			x, y = x+1, y+1
		case '-':
			e.line = a[x]
			x++
		case '+':
			e.line = b[y]
			y++
		}
		edits = append(edits, e)
	}
	return edits
}

// myers returns the operations (' ', '-', '+') of a shortest edit script
// from a to b, removals before additions within each change.
func myers(a, b []string) []byte {
	n, m := len(a), len(b)
	maxD := min(n+m, maxEditDistance)
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		// Keep only the diagonals round d can reach, so the trace costs
		// O(D²) memory instead of O(D·(N+M)).
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, n, m)
			}
		}
	}
	// Too different to diff within the bound: remove all, then add all.
	ops := make([]byte, 0, n+m)
	for range n {
		ops = append(ops, '-')
	}
	for range m {
		ops = append(ops, '+')
	}
	return ops
}

// backtrack walks the trace of myers back from (x, y) to the origin.
// trace[d] holds the diagonals -d-1 .. d+1 as they were before round d.
func backtrack(trace [][]int, x, y int) []byte {
	var rev []byte
	for d := len(trace) - 1; d >= 0; d-- {
		v := trace[d]
		k := x - y
		var pk int
		if k == -d || (k != d && v[k-1+d+1] < v[k+1+d+1]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := v[pk+d+1]
		py := px - pk
		for x > px && y > py {
			rev = append(rev, ' ')
			x, y = x-1, y-1
		}
		if d > 0 {
			if x == px {
				rev = append(rev, '+')
			} else {
				rev = append(rev, '-')
			}
		}
		x, y = px, py
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}
