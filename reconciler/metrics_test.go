package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/test/syncbuf"
)

// TestMetricNamesAndLabels checks the reconciler's series against
// DESIGN.md's table: names, types and label names exactly.
func TestMetricNamesAndLabels(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res := etc + fileRes("/etc/a.conf", "a") + fileRes("/etc/w.conf", "w") + "      drift: warn\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res,
		"verify:\n  - name: ok\n    command: \"true\"\n  - name: suite\n    junit: \"true\"\n")})
	if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	f.writeHostFile("h1", "/etc/w.conf", "drifted")
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	f.r.m.rollbacks.WithLabelValues("prod", "verify")
	want := map[string]struct {
		typ    string
		labels []string
	}{
		"driftless_build_info":                                {"GAUGE", []string{"goversion", "version"}},
		"driftless_reconcile_total":                           {"COUNTER", []string{"environment", "result"}},
		"driftless_reconcile_duration_seconds":                {"HISTOGRAM", []string{"environment"}},
		"driftless_environment_info":                          {"GAUGE", []string{"environment", "revision", "status"}},
		"driftless_last_applied_timestamp_seconds":            {"GAUGE", []string{"environment"}},
		"driftless_changes_applied_total":                     {"COUNTER", []string{"action", "environment", "kind"}},
		"driftless_drift_resources":                           {"GAUGE", []string{"environment", "host", "kind", "mode"}},
		"driftless_drift_oldest_seconds":                      {"GAUGE", []string{"environment"}},
		"driftless_verification_total":                        {"COUNTER", []string{"check", "environment", "result"}},
		"driftless_verify_tests_total":                        {"COUNTER", []string{"environment", "result"}},
		"driftless_rollbacks_total":                           {"COUNTER", []string{"environment", "reason"}},
		"driftless_rollout_end_refused_total":                 {"COUNTER", []string{"environment"}},
		"driftless_host_up":                                   {"GAUGE", []string{"environment", "host"}},
		"driftless_environment_blocked":                       {"GAUGE", []string{"environment"}},
		"driftless_environment_not_ready":                     {"GAUGE", []string{"environment", "reason"}},
		"driftless_config_last_reload_successful":             {"GAUGE", nil},
		"driftless_promotion_pending":                         {"GAUGE", []string{"environment"}},
		"driftless_promotion_pending_since_timestamp_seconds": {"GAUGE", []string{"environment"}},
	}
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range fams {
		w, ok := want[mf.GetName()]
		if !ok {
			t.Errorf("unexpected metric %s", mf.GetName())
			continue
		}
		seen[mf.GetName()] = true
		if mf.GetType().String() != w.typ {
			t.Errorf("%s is a %s, want %s", mf.GetName(), mf.GetType(), w.typ)
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			sort.Strings(names)
			if !reflect.DeepEqual(names, w.labels) {
				t.Errorf("%s labels %v, want %v", mf.GetName(), names, w.labels)
			}
			if h := m.GetHistogram(); h != nil {
				b := h.GetBucket()
				if top := b[len(b)-1].GetUpperBound(); top < 600 {
					t.Errorf("%s buckets end at %v, want 600", mf.GetName(), top)
				}
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("metric %s not exported", name)
		}
	}
}

// logLines decodes the JSON log lines written to s.
func logLines(s *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for _, l := range bytes.Split(s.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestLogFields checks that lines about work on a host carry the
// environment, host and revision, as DESIGN.md asks.
func TestLogFields(t *testing.T) {
	sink := &syncbuf.Buffer{}
	f := newFixture(t, func(o *Options) { o.Logger = zerolog.New(sink) })
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, l := range logLines(sink) {
		if l["message"] != "applied" {
			continue
		}
		applied++
		if l["environment"] != "prod" || l["host"] != "h1" || l["revision"] != rev.Short() || l["resource"] == nil {
			t.Errorf("log line without its fields: %v", l)
		}
	}
	if applied != 2 {
		t.Fatalf("%d applied lines, want 2", applied)
	}
}

// TestDriftLoggedWithDiff: every correction of drift is logged with its
// diff, and so is drift only warned about, so that an operator sees what
// had changed on the host.
func TestDriftLoggedWithDiff(t *testing.T) {
	sink := &syncbuf.Buffer{}
	f := newFixture(t, func(o *Options) { o.Logger = zerolog.New(sink) })
	ctx := context.Background()
	res := etc + fileRes("/etc/a.conf", "declared\n") + fileRes("/etc/w.conf", "watched\n") + "      drift: warn\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
	if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	f.writeHostFile("h1", "/etc/a.conf", "edited by hand\n")
	f.writeHostFile("h1", "/etc/w.conf", "also edited\n")
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ resource, removed, added string }{
		"correcting drift": {"file:/etc/a.conf", "-edited by hand", "+declared"},
		"drift detected":   {"file:/etc/w.conf", "-also edited", "+watched"},
	}
	seen := map[string]bool{}
	for _, l := range logLines(sink) {
		msg, _ := l["message"].(string)
		w, ok := want[msg]
		if !ok {
			continue
		}
		seen[msg] = true
		diff, _ := l["diff"].(string)
		if l["resource"] != w.resource || l["host"] != "h1" || l["environment"] != "prod" || l["revision"] != rev.Short() ||
			!strings.Contains(diff, w.removed) || !strings.Contains(diff, w.added) {
			t.Errorf("%q line: %v; want resource %s and a diff with %q and %q", msg, l, w.resource, w.removed, w.added)
		}
	}
	for msg := range want {
		if !seen[msg] {
			t.Errorf("no %q line logged", msg)
		}
	}
}
