package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

// junitFixture returns the absolute path of a report in testdata/junit,
// made by go test -json and go-junit-report (see its README).
func junitFixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "junit", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Tests
	}{
		{"pass.xml", Tests{Passed: 4, Skipped: 1}},
		{"fail.xml", Tests{Passed: 2, Failed: 2, Skipped: 1}},
		{"build-error.xml", Tests{Errored: 1}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(junitFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseReport(b)
			if err != nil || got != tc.want {
				t.Fatalf("ParseReport = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "   \n", "<testsuites></testsuites>", "not xml at all <", "<testsuite name=\"x\"><testcase"} {
		if got, err := ParseReport([]byte(bad)); err == nil {
			t.Errorf("ParseReport(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestJUnit runs test commands on a host (the local transport under a
// sandbox root) and on the daemon's machine, with the report in a file or
// on standard output, and checks pass, fail, threshold and broken reports.
func TestJUnit(t *testing.T) {
	root := t.TempDir()
	tr := hostTransport(t, root)
	pass, fail, build := junitFixture(t, "pass.xml"), junitFixture(t, "fail.xml"), junitFixture(t, "build-error.xml")
	// The host's test command copies a report made by a real runner to
	// where the check reads it, and exits as the runner did.
	onHost := func(src string, exit int) string {
		return "mkdir -p \"$DRIFTLESS_ROOT/run/app\" && cp " + src + " \"$DRIFTLESS_ROOT/run/app/report.xml\"; echo running tests; exit " + strings.Repeat("1", exit)
	}
	local := filepath.Join(t.TempDir(), "report.xml")
	for _, tc := range []struct {
		name   string
		check  config.Check
		ok     bool
		tests  *Tests
		reason string
	}{
		{"host file pass", config.Check{JUnit: onHost(pass, 0), Report: "/run/app/report.xml"}, true, &Tests{Passed: 4, Skipped: 1}, "4 passed, 0 failed, 0 errored, 1 skipped"},
		{"host file fail", config.Check{JUnit: onHost(fail, 1), Report: "/run/app/report.xml"}, false, &Tests{Passed: 2, Failed: 2, Skipped: 1}, "expected at most 0 failed or errored test(s), got 2 passed, 2 failed"},
		{"host fail under threshold", config.Check{JUnit: onHost(fail, 1), Report: "/run/app/report.xml", MaxFailures: 2}, true, &Tests{Passed: 2, Failed: 2, Skipped: 1}, "2 failed"},
		{"host build error", config.Check{JUnit: onHost(build, 1), Report: "/run/app/report.xml", MaxFailures: 0}, false, &Tests{Errored: 1}, "1 errored"},
		{"host stdout", config.Check{JUnit: "cat " + pass}, true, &Tests{Passed: 4, Skipped: 1}, "4 passed"},
		{"host missing report", config.Check{JUnit: "echo no runner here >&2; exit 127", Report: "/run/app/none.xml"}, false, nil, "cannot read the report /run/app/none.xml"},
		{"host not xml", config.Check{JUnit: "echo PASS"}, false, nil, "no test results"},
		{"local file fail", config.Check{JUnit: "cp " + fail + " " + local + "; exit 1", Report: local, On: "local"}, false, &Tests{Passed: 2, Failed: 2, Skipped: 1}, "on local"},
		{"local stdout pass", config.Check{JUnit: "cat " + pass, On: "local"}, true, &Tests{Passed: 4, Skipped: 1}, "4 passed"},
		{"relative report", config.Check{JUnit: "true", Report: "report.xml"}, false, nil, "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRunner(t)
			res := r.Check(context.Background(), tc.check, &config.Host{Name: "app-1"}, tr)
			if res.OK != tc.ok || res.Kind != "junit" || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("got %+v, want ok=%v and a reason with %q", res, tc.ok, tc.reason)
			}
			if (res.Tests == nil) != (tc.tests == nil) || (res.Tests != nil && *res.Tests != *tc.tests) {
				t.Fatalf("tests = %+v, want %+v", res.Tests, tc.tests)
			}
		})
	}
}

// FuzzParseReport feeds arbitrary bytes where a test command's report is
// expected: it must never panic, and counts are never negative.
func FuzzParseReport(f *testing.F) {
	for _, n := range []string{"pass.xml", "fail.xml", "build-error.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "junit", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("<testsuite><testsuite><testcase><failure/></testcase></testsuite></testsuite>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseReport(data)
		if err == nil && (got.Total() <= 0 || got.Failed < 0 || got.Errored < 0 || got.Passed < 0 || got.Skipped < 0) {
			t.Fatalf("ParseReport = %+v", got)
		}
	})
}
