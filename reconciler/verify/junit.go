package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	junit "github.com/joshdk/go-junit"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// MaxReportBytes bounds a JUnit report: a bigger one fails the check
// rather than filling the daemon's memory.
const MaxReportBytes = 32 << 20

// Tests are the counts of a JUnit report: every test is exactly one of
// passed, failed, errored and skipped.
type Tests struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Errored int `json:"errored"`
	Skipped int `json:"skipped"`
}

// Total is the number of tests.
func (t Tests) Total() int { return t.Passed + t.Failed + t.Errored + t.Skipped }

// Add returns the sum of t and o.
func (t Tests) Add(o Tests) Tests {
	return Tests{Passed: t.Passed + o.Passed, Failed: t.Failed + o.Failed, Errored: t.Errored + o.Errored, Skipped: t.Skipped + o.Skipped}
}

// String reads "12 passed, 1 failed, 0 errored, 2 skipped".
func (t Tests) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d errored, %d skipped", t.Passed, t.Failed, t.Errored, t.Skipped)
}

// ParseReport reads a JUnit XML report (one <testsuite>, or <testsuites>
// holding several, nested or not) and counts its tests. A report that is
// not XML, or that holds no test at all, is an error: a test command that
// ran nothing has not shown anything to pass.
func ParseReport(b []byte) (Tests, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Tests{}, errors.New("the report is empty")
	}
	suites, err := junit.Ingest(b)
	if err != nil {
		return Tests{}, fmt.Errorf("parse JUnit XML: %w", err)
	}
	var t Tests
	for _, s := range suites {
		// Totals of a suite include its nested suites.
		t = t.Add(Tests{Passed: s.Totals.Passed, Failed: s.Totals.Failed, Errored: s.Totals.Error, Skipped: s.Totals.Skipped})
	}
	if t.Total() == 0 {
		return Tests{}, errors.New("the report holds no test")
	}
	return t, nil
}

// junitCheck runs c.JUnit (on the host through t, or on the daemon's
// machine with "on: local"), reads its JUnit report (the file c.Report, or
// its standard output) and passes when failed plus errored tests are at
// most c.MaxFailures. The command's exit status is not read: test runners
// exit non-zero when a test fails, and the report says how many did.
func junitCheck(_ *Runner, c config.Check, _ *config.Host, t targets.Transport, out *Result) (attempt, error) {
	var read func(ctx context.Context) (report, stderr []byte, err error)
	where := c.On
	switch c.On {
	case "", "host":
		where = "host"
		read = func(ctx context.Context) ([]byte, []byte, error) {
			if t == nil {
				return nil, nil, errors.New("there is no transport to the host")
			}
			return readHostReport(ctx, t, c.JUnit, c.Report)
		}
	case "local":
		read = func(ctx context.Context) ([]byte, []byte, error) {
			return readLocalReport(ctx, c.JUnit, c.Report)
		}
	default:
		return nil, fmt.Errorf("on: %q is neither host nor local", c.On)
	}
	return func(ctx context.Context) (string, error) {
		out.Tests = nil
		report, stderr, err := read(ctx)
		if err != nil {
			return "", fmt.Errorf("run %q on %s: %w", c.JUnit, where, err)
		}
		tests, err := ParseReport(report)
		if err != nil {
			return "", fmt.Errorf("run %q on %s: no test results: %w (stderr: %s)", c.JUnit, where, err, lastLines(stderr, stderrLines))
		}
		out.Tests = &tests
		if bad := tests.Failed + tests.Errored; bad > c.MaxFailures {
			return "", fmt.Errorf("%q on %s: expected at most %d failed or errored test(s), got %s", c.JUnit, where, c.MaxFailures, tests)
		}
		return fmt.Sprintf("%q on %s: %s", c.JUnit, where, tests), nil
	}, nil
}

// readHostReport runs the test command on the host, then reads its report
// in the same script, at most MaxReportBytes+1 of it. The command runs in
// a subshell, so that its exit does not end the script; its own output
// goes to stderr when the report is a file, so that only the report comes
// back on stdout.
func readHostReport(ctx context.Context, t targets.Transport, cmd, report string) ([]byte, []byte, error) {
	root := t.Root()
	script := "DRIFTLESS_ROOT=" + targets.ShellQuote(root) + "; export DRIFTLESS_ROOT\n"
	limit := fmt.Sprint(MaxReportBytes + 1)
	if report == "" {
		script += "( " + cmd + "\n) | head -c " + limit + "\n"
	} else {
		script += "( " + cmd + "\n) >&2\nhead -c " + limit + " -- " + targets.ShellQuote(filepath.Join(root, path.Clean(report))) + "\n"
	}
	res, err := t.Run(ctx, script, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("could not run: %w", err)
	}
	if report != "" && res.Exit != 0 {
		return nil, res.Stderr, fmt.Errorf("cannot read the report %s: %s", report, lastLines(res.Stderr, 1))
	}
	if len(res.Stdout) > MaxReportBytes {
		return nil, res.Stderr, fmt.Errorf("the report is over %d bytes", MaxReportBytes)
	}
	return res.Stdout, res.Stderr, nil
}

// readLocalReport runs the test command on the daemon's machine and reads
// its report, at most MaxReportBytes of it.
func readLocalReport(ctx context.Context, cmd, report string) ([]byte, []byte, error) {
	stdout := &limited{max: MaxReportBytes}
	var w io.Writer = stdout
	if report != "" {
		w = nil
	}
	_, stderr, err := runLocal(ctx, cmd, w)
	if err != nil {
		return nil, stderr, fmt.Errorf("could not run: %w", err)
	}
	if report == "" {
		if stdout.over {
			return nil, stderr, fmt.Errorf("the report is over %d bytes", MaxReportBytes)
		}
		return stdout.buf.Bytes(), stderr, nil
	}
	f, err := os.Open(report)
	if err != nil {
		return nil, stderr, fmt.Errorf("cannot read the report: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxReportBytes+1))
	if err != nil {
		return nil, stderr, fmt.Errorf("read the report %s: %w", report, err)
	}
	if len(b) > MaxReportBytes {
		return nil, stderr, fmt.Errorf("the report %s is over %d bytes", report, MaxReportBytes)
	}
	return b, stderr, nil
}

// limited keeps the first max bytes written to it and notes whether more came.
type limited struct {
	max  int
	buf  bytes.Buffer
	over bool
}

func (l *limited) Write(p []byte) (int, error) {
	room := l.max - l.buf.Len()
	if len(p) > room {
		l.over = true
		l.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.buf.Write(p)
}
