package targets

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{name: "equal", old: "a\n", new: "a\n", want: ""},
		{name: "one line changed", old: "a\nb\nc\n", new: "a\nx\nc\n",
			want: "@@ -1,3 +1,3 @@\n a\n-b\n+x\n c\n"},
		{name: "created", old: "", new: "a\nb\n",
			want: "@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{name: "emptied", old: "a\n", new: "",
			want: "@@ -1 +0,0 @@\n-a\n"},
		{name: "no newline at end", old: "a\nb", new: "a\nb\n",
			want: "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
		{name: "two hunks", old: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", new: "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12x\n",
			want: "@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -9,4 +10,4 @@\n 9\n 10\n 11\n-12\n+12x\n"},
		{name: "close changes merge", old: "1\n2\n3\n4\n5\n6\n7\n8\n", new: "1x\n2\n3\n4\n5\n6\n7\n8x\n",
			want: "@@ -1,8 +1,8 @@\n-1\n+1x\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+8x\n"},
		{name: "inserted in the middle", old: "a\nb\nc\nd\ne\nf\ng\nh\n", new: "a\nb\nc\nd\nNEW\ne\nf\ng\nh\n",
			want: "@@ -2,6 +2,7 @@\n b\n c\n d\n+NEW\n e\n f\n g\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := UnifiedDiff("a/f", "b/f", []byte(tc.old), []byte(tc.new))
			want := ""
			if tc.want != "" {
				want = "--- a/f\n+++ b/f\n" + tc.want
			}
			if got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
			gnu := gnuDiff(t, tc.old, tc.new)
			if gnu != "" && got != gnu {
				t.Fatalf("differs from diff -u:\n%s\ndiff -u says:\n%s", got, gnu)
			}
		})
	}
}

// gnuDiff returns what diff -u says, or "" when diff is not installed.
func gnuDiff(t *testing.T, old, new string) string {
	t.Helper()
	if _, err := exec.LookPath("diff"); err != nil {
		return ""
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(new), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "diff", "-u", "--label", "a/f", "--label", "b/f", a, b).Output()
	return string(out)
}

// TestUnifiedDiffApplies diffs random edits of a random text and checks
// with git apply that each diff turns the old text into the new one.
func TestUnifiedDiffApplies(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		need.Missing(t, "git is not installed")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha\n", "beta\n", "gamma\n", "delta\n", "x\n", "\n"}
	randomText := func(n int) []string {
		var lines []string
		for range n {
			lines = append(lines, words[rng.IntN(len(words))])
		}
		return lines
	}
	for i := range 60 {
		old := randomText(rng.IntN(40))
		var neu []string
		for _, l := range old {
			switch rng.IntN(6) {
			case 0: // dropped
			case 1:
				neu = append(neu, l, words[rng.IntN(len(words))])
			case 2:
				neu = append(neu, "changed\n")
			default:
				neu = append(neu, l)
			}
		}
		if i%5 == 0 && len(neu) > 0 {
			neu[len(neu)-1] = strings.TrimSuffix(neu[len(neu)-1], "\n") + "tail"
		}
		o, n := strings.Join(old, ""), strings.Join(neu, "")
		if o == "" || n == "" || o == n {
			continue
		}
		d := UnifiedDiff("a/f", "b/f", []byte(o), []byte(n))
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(o), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, "git", "apply", "--unidiff-zero", "-")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(d)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("case %d: git apply: %v: %s\nold %q\nnew %q\n%s", i, err, out, o, n, d)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "f"))
		if !bytes.Equal(got, []byte(n)) {
			t.Fatalf("case %d: applying the diff gave %q, want %q\n%s", i, got, n, d)
		}
	}
}

func TestUnifiedDiffLargeRewrite(t *testing.T) {
	var a, b strings.Builder
	for i := range 5000 {
		a.WriteString("old " + strings.Repeat("x", i%7) + "\n")
		b.WriteString("new " + strings.Repeat("y", i%5) + "\n")
	}
	d := UnifiedDiff("a/f", "b/f", []byte(a.String()), []byte(b.String()))
	if strings.Count(d, "\n-") != 5000 || strings.Count(d, "\n+") != 5001 {
		t.Fatalf("a full rewrite should remove 5000 and add 5000 lines: -%d +%d", strings.Count(d, "\n-"), strings.Count(d, "\n+"))
	}
}

func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\n", "a\nc\n")
	f.Add("", "x")
	f.Add("x\ny", "y\nx")
	f.Add("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2x\n3\n4\n5\n6\n7\n8x\n9")
	f.Fuzz(func(t *testing.T, old, new string) {
		d := UnifiedDiff("a/f", "b/f", []byte(old), []byte(new))
		if (d == "") != (old == new) {
			t.Fatalf("empty diff %v for equal texts %v", d == "", old == new)
		}
		if d == "" {
			return
		}
		got, err := applyUnified(old, d)
		if err != nil {
			t.Fatalf("%v\n%s", err, d)
		}
		if got != new {
			t.Fatalf("applying the diff gave %q, want %q\n%s", got, new, d)
		}
	})
}

// applyUnified applies a unified diff made by UnifiedDiff to old, checking
// every context and removed line and every hunk header on the way.
func applyUnified(old, d string) (string, error) {
	src := splitLines(old)
	lines := strings.SplitAfter(d, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		return "", fmt.Errorf("no headers")
	}
	var out []string
	pos := 0
	for i := 2; i < len(lines) && lines[i] != ""; {
		h := strings.TrimSuffix(lines[i], "\n")
		a, na, b, nb, err := parseHunkHeader(h)
		if err != nil {
			return "", fmt.Errorf("hunk header %q: %w", h, err)
		}
		start := a - 1
		if na == 0 {
			start = a
		}
		if start < pos || start > len(src) {
			return "", fmt.Errorf("hunk %q out of order", h)
		}
		out = append(out, src[pos:start]...)
		pos = start
		if len(out) != max(b-1, 0) && nb > 0 {
			return "", fmt.Errorf("hunk %q: new side starts at %d, have %d lines", h, b, len(out))
		}
		i++
		var seenA, seenB int
		for i < len(lines) && lines[i] != "" && !strings.HasPrefix(lines[i], "@@") {
			l := lines[i]
			i++
			if i < len(lines) && lines[i] == "\\ No newline at end of file\n" {
				l = strings.TrimSuffix(l, "\n")
				i++
			}
			op, text := l[0], l[1:]
			switch op {
			case ' ', '-':
				if pos >= len(src) || src[pos] != text {
					return "", fmt.Errorf("line %d: %q does not match %q", pos+1, text, src[min(pos, len(src)-1)])
				}
				pos++
				seenA++
				if op == ' ' {
					out = append(out, text)
					seenB++
				}
			case '+':
				out = append(out, text)
				seenB++
			default:
				return "", fmt.Errorf("bad line %q", l)
			}
		}
		if seenA != na || seenB != nb {
			return "", fmt.Errorf("hunk %q holds -%d +%d lines", h, seenA, seenB)
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, ""), nil
}

func parseHunkHeader(h string) (a, na, b, nb int, err error) {
	var l, r string
	if _, err := fmt.Sscanf(h, "@@ -%s +%s @@", &l, &r); err != nil {
		return 0, 0, 0, 0, err
	}
	side := func(s string) (int, int, error) {
		x, y, found := strings.Cut(s, ",")
		v, err := strconv.Atoi(x)
		if err != nil {
			return 0, 0, err
		}
		if !found {
			return v, 1, nil
		}
		n, err := strconv.Atoi(y)
		return v, n, err
	}
	if a, na, err = side(l); err != nil {
		return
	}
	b, nb, err = side(r)
	return
}

// BenchmarkUnifiedDiff diffs a 2,000-line file with ten scattered edits.
func BenchmarkUnifiedDiff(b *testing.B) {
	var old, neu strings.Builder
	for i := range 2000 {
		line := "setting_" + strconv.Itoa(i) + " = value\n"
		old.WriteString(line)
		if i%200 == 7 {
			line = "setting_" + strconv.Itoa(i) + " = changed\n"
		}
		neu.WriteString(line)
	}
	o, n := []byte(old.String()), []byte(neu.String())
	b.ReportAllocs()
	for b.Loop() {
		if UnifiedDiff("a/f", "b/f", o, n) == "" {
			b.Fatal("no diff")
		}
	}
}
