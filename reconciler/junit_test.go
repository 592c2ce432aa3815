package reconciler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
)

// TestJUnitVerification drives verification both ways with JUnit reports
// made by a real test runner (go test -json converted by go-junit-report,
// in verify/testdata/junit): each revision ships its test suite's report to
// the hosts, and the junit check (the real verify runner, on the host)
// runs the "suite" and reads the report. The passing report lets rev1
// through; the failing one rolls rev2 back. Test counts reach the run's
// history, the reports sent to notifiers, the status page and
// driftless_verify_tests_total.
func TestJUnitVerification(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Verifier = VerifyRunner(verify.New(verify.Options{Logger: zerolog.Nop()}))
	})
	ctx := context.Background()
	report := func(name string) string {
		b, err := os.ReadFile("verify/testdata/junit/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The "test runner" on the host writes the report of the suite the
	// revision shipped, and exits 1 when it holds a failure, as go test does.
	check := "verify:\n  - name: suite\n    junit: >-\n      mkdir -p \"$DRIFTLESS_ROOT/run/shop\" &&\n      cp \"$DRIFTLESS_ROOT/opt/shop/suite.xml\" \"$DRIFTLESS_ROOT/run/shop/report.xml\" &&\n      ! grep -q '<failure' \"$DRIFTLESS_ROOT/opt/shop/suite.xml\"\n    report: /run/shop/report.xml\n"
	env := func(conf, suite string) string {
		res := "    - directory: /opt\n      mode: \"0755\"\n    - directory: /opt/shop\n      mode: \"0755\"\n" +
			fileRes("/opt/shop/app.conf", conf) + fileRes("/opt/shop/suite.xml", suite)
		return envYAML("prod", []string{"h1", "h2"}, nil, res, "rollout: {batch: 1}\n"+check)
	}
	tests := func(result string) float64 {
		return testutil.ToFloat64(f.r.m.tests.WithLabelValues("prod", result))
	}

	rev1 := f.revision(map[string]string{"environments/prod.yaml": env("v1\n", report("pass.xml"))})
	runs, err := f.r.ApplyRevision(ctx, rev1)
	if err != nil || len(runs) != 1 || runs[0].Result != status.ResultSuccess {
		t.Fatalf("rev1 with a passing suite: %+v %v", runs, err)
	}
	if want := (verify.Tests{Passed: 8, Skipped: 2}); runs[0].Tests == nil || *runs[0].Tests != want {
		t.Fatalf("rev1 run tests = %+v, want %+v (two hosts)", runs[0].Tests, want)
	}
	var rep status.Report
	eventually(t, "success report", func() bool { var ok bool; rep, ok = f.rep.find(status.StatusSuccess); return ok })
	if rep.Tests == nil || !strings.Contains(rep.Description, "tests: 8 passed, 0 failed, 0 errored, 2 skipped") {
		t.Errorf("success report = %+v", rep)
	}
	if tests("passed") != 8 || tests("skipped") != 2 || tests("failed") != 0 {
		t.Errorf("tests_total after rev1: passed %v skipped %v failed %v", tests("passed"), tests("skipped"), tests("failed"))
	}

	rev2 := f.revision(map[string]string{"environments/prod.yaml": env("v2\n", report("fail.xml"))})
	runs, err = f.r.ApplyRevision(ctx, rev2)
	if err == nil || len(runs) != 1 || runs[0].Result != status.ResultRolledBack || runs[0].ErrorClass != status.ErrorVerify {
		t.Fatalf("rev2 with a failing suite: %+v %v", runs, err)
	}
	if !strings.Contains(runs[0].Error, "expected at most 0 failed or errored test(s), got 2 passed, 2 failed") {
		t.Errorf("rev2 error = %q", runs[0].Error)
	}
	// Batch 1 stops at the first host: only its suite ran.
	if want := (verify.Tests{Passed: 2, Failed: 2, Skipped: 1}); runs[0].Tests == nil || *runs[0].Tests != want {
		t.Fatalf("rev2 run tests = %+v, want %+v", runs[0].Tests, want)
	}
	for _, h := range []string{"h1", "h2"} {
		if got := f.hostFile(h, "/opt/shop/app.conf"); got != "v1\n" {
			t.Errorf("%s app.conf after the rollback = %q", h, got)
		}
	}
	eventually(t, "rollback report", func() bool { var ok bool; rep, ok = f.rep.find(status.StatusRolledBack); return ok })
	if rep.Tests == nil || rep.Tests.Failed != 2 || !strings.Contains(rep.Description, "tests: 2 passed, 2 failed") {
		t.Errorf("rollback report = %+v", rep)
	}
	// The rollback verifies h1 again with rev1's suite: 4 more passed.
	if tests("failed") != 2 || tests("passed") != 8+2+4 {
		t.Errorf("tests_total after rev2: passed %v failed %v", tests("passed"), tests("failed"))
	}

	hist, err := f.r.History("prod", 10)
	if err != nil || len(hist) != 2 || hist[0].Tests == nil || hist[0].Tests.Failed != 2 || hist[1].Tests == nil || hist[1].Tests.Passed != 8 {
		t.Fatalf("history = %+v %v", hist, err)
	}
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Refresh: time.Minute}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, _, doc, _ := page(t, srv, "/environments/prod")
	if body := text(doc); !strings.Contains(body, "2/5 passed, 2 failed, 1 skipped") || !strings.Contains(body, "8/10 passed, 2 skipped") {
		t.Errorf("status page does not show the test counts:\n%s", body)
	}
}
