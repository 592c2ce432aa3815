package need

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// skipCall is a direct skip of the testing package.
var skipCall = regexp.MustCompile(`\.(Skip|Skipf|SkipNow)\(`)

// TestEverySkipGoesThroughNeed: outside this package no Go file of the
// repository skips a test directly, so that strict mode sees every skip.
func TestEverySkipGoesThroughNeed(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// testdata holds fixtures (a test suite whose JUnit report is a
		// fixture skips a test on purpose); Go's tooling ignores it.
		if d.IsDir() && (path == self || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if skipCall.MatchString(line) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d skips directly; use need.Missing (or need.Optional for -short and opt-in tests): %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d Go files checked: the walk is broken", checked)
	}
}

// TestStrictMode: a missing part skips normally and fails in strict mode.
func TestStrictMode(t *testing.T) {
	for _, tc := range []struct {
		strict, ci string
		want       bool
	}{
		{"", "", false}, {"1", "", true}, {"true", "", true}, {"", "true", true}, {"0", "", false},
	} {
		t.Setenv(StrictEnv, tc.strict)
		t.Setenv("CI", tc.ci)
		if Strict() != tc.want {
			t.Errorf("%s=%q CI=%q: strict %v, want %v", StrictEnv, tc.strict, tc.ci, Strict(), tc.want)
		}
		rec := &recorder{TB: t}
		func() {
			defer func() { _ = recover() }()
			Missing(rec, "a part")
		}()
		if rec.failed != tc.want || rec.skipped == tc.want {
			t.Errorf("strict %v: failed %v, skipped %v", tc.want, rec.failed, rec.skipped)
		}
	}
}

// recorder notes whether Missing failed or skipped, without ending the
// test running it (it panics instead, which TestStrictMode recovers).
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	panic("fatal")
}
func (r *recorder) Skip(...any) {
	r.skipped = true
	panic("skip")
}
