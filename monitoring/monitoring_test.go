package monitoring

import (
	"bufio"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/promserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// designMetrics reads the metric names of the metrics table of
// DESIGN.md, the one list every rule and panel must keep to.
func designMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../DESIGN.md")
	if err != nil {
		t.Fatalf("read the metrics table: %v", err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\s*\\|\\s*`(driftless_[a-z0-9_]+)`\\s*\\|")
	var names []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if m := row.FindStringSubmatch(s.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metrics in DESIGN.md's table: %v", len(names), names)
	}
	slices.Sort(names)
	return names
}

// TestMetricNamesAreDesigned checks that the rules and the dashboard use
// only metrics of DESIGN.md, and between them use every one.
func TestMetricNamesAreDesigned(t *testing.T) {
	got, err := MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	want := designMetrics(t)
	for _, n := range got {
		if !slices.Contains(want, n) {
			t.Errorf("%s is used by the rules or dashboard but is not in DESIGN.md's metrics table", n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("%s of DESIGN.md is neither alerted on nor shown on the dashboard", n)
		}
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("MetricNames is not sorted and unique: %v", got)
	}
}

// TestPromtool validates the rule file and runs its unit tests with
// Prometheus's own tool.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		need.Missing(t, "promtool is not installed (Debian package prometheus; test/install-deps.sh installs it)")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// grafanaVars stands in for what Grafana substitutes before it sends a
// query: "All" for the multi-value variables, an interval for the range.
var grafanaVars = strings.NewReplacer(
	"$environment", ".*",
	"$host", ".*",
	"$__rate_interval", "2m",
	"$__interval", "1m",
	"$__range", "1h",
)

// labelValues matches Grafana's label_values(selector, label) variable
// query, which is not PromQL: its selector is.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]+\)$`)

// TestQueriesRunOnPrometheus sends every query of the rules and the
// dashboard to a real Prometheus, which must accept each one.
func TestQueriesRunOnPrometheus(t *testing.T) {
	qs, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 20 {
		t.Fatalf("only %d queries found", len(qs))
	}
	base := promserver.Start(t)
	for _, q := range qs {
		expr := grafanaVars.Replace(q.Expr)
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1]
		}
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a Grafana variable is left in %q", q.From, expr)
			continue
		}
		if _, err := promserver.Query(base, expr); err != nil {
			t.Errorf("%s: Prometheus refuses %q: %v", q.From, expr, err)
		}
	}
}

// TestDashboardLayout checks what Grafana needs to show every panel:
// unique ids, a data source through the datasource variable, at least one
// query per panel, and panels that do not overlap.
func TestDashboardLayout(t *testing.T) {
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard(), &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: grid position %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Fatalf("panel %q overlaps panel %q at column %d, row %d", p.Title, other, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Expr == "" || q.RefID == "" {
				t.Errorf("panel %q has a query without expr or refId", p.Title)
			}
		}
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	a := AlertRules()
	a[0] ^= 0xff
	if AlertRules()[0] == a[0] {
		t.Error("AlertRules returned the embedded bytes themselves")
	}
	b := Dashboard()
	b[0] ^= 0xff
	if Dashboard()[0] == b[0] {
		t.Error("Dashboard returned the embedded bytes themselves")
	}
}

// TestAlertsOnRealPrometheus loads alerts.yaml into a real Prometheus
// scraping driftless-shaped metrics served here: a rollback fires
// DriftlessRollback within seconds, and an unreachable host makes
// DriftlessHostUnreachable pending (its for: is 5 minutes).
func TestAlertsOnRealPrometheus(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, AlertRules(), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rollbacks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftless_rollbacks_total", Help: "test"}, []string{"environment", "reason"})
	hostUp := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "driftless_host_up", Help: "test"}, []string{"environment", "host"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "driftless_build_info", Help: "test"}, []string{"version", "goversion"})
	reg.MustRegister(rollbacks, hostUp, buildInfo)
	buildInfo.WithLabelValues("test", "go").Set(1)
	rollbacks.WithLabelValues("prod", "verify")
	hostUp.WithLabelValues("prod", "web-1").Set(1)
	hostUp.WithLabelValues("prod", "web-2").Set(1)
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()
	base := promserver.StartWith(t, promserver.Options{Targets: []string{metrics.URL}, RuleFiles: []string{rules}})

	// The counter's 0 has been scraped; now it moves, and the host goes down.
	rollbacks.WithLabelValues("prod", "verify").Inc()
	hostUp.WithLabelValues("prod", "web-2").Set(0)

	// Alerts may be pending from evaluations before the first scrape
	// (DriftlessAbsent); the set must settle on exactly these two.
	want := map[string]string{"DriftlessRollback": "firing", "DriftlessHostUnreachable": "pending"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		alerts, err := promserver.Alerts(base)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, a := range alerts {
			got[a.Labels["alertname"]] = a.State
		}
		if maps.Equal(got, want) {
			for _, a := range alerts {
				switch a.Labels["alertname"] {
				case "DriftlessRollback":
					if a.Labels["environment"] != "prod" || a.Labels["reason"] != "verify" || a.Annotations["summary"] != "driftless rolled back prod (verify)" {
						t.Errorf("rollback alert %+v", a)
					}
				case "DriftlessHostUnreachable":
					if a.Labels["host"] != "web-2" || a.Labels["environment"] != "prod" {
						t.Errorf("unreachable alert for the wrong host: %+v", a)
					}
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts %+v, want states %v", alerts, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
