package packaging

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/monitoring"
	"github.com/driftless/driftless/sources/webhook"
	"github.com/driftless/driftless/test/gitserver"
)

// exposition is what one scrape of /metrics declares.
type exposition struct {
	// types maps each family of a "# TYPE" line to its type.
	types map[string]string
	// series maps each sample line's name and labels to its value.
	series map[string]float64
	// names holds the sample names (a histogram's _bucket, _sum, _count).
	names map[string]bool
}

// parseExposition reads Prometheus's text format: "# TYPE name type"
// lines and "name{labels} value" samples.
func parseExposition(text string) (exposition, error) {
	e := exposition{types: map[string]string{}, series: map[string]float64{}, names: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.types[f[2]] = f[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return e, fmt.Errorf("sample line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return e, fmt.Errorf("sample line %q: %w", line, err)
		}
		e.series[line[:i]] = v
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		e.names[name] = true
	}
	return e, sc.Err()
}

// find returns the value of the first series of name whose labels
// include every one of want (`key="value"`), and whether there is one.
func (e exposition) find(name string, want ...string) (float64, bool) {
	for s, v := range e.series {
		if !strings.HasPrefix(s, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return v, true
		}
	}
	return 0, false
}

// missing lists the families of names the scrape does not declare.
func (e exposition) missing(names []string) []string {
	var out []string
	for _, n := range names {
		if _, ok := e.types[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// The declared repository: "watched" is applied (its junit check counts
// one test) then drifts in warn mode (reported, not healed); "broken" fails its verification and is rolled
// back, so the verification and rollback counters get their series.
const (
	watchedEnv = `environment: watched
drift: warn
hosts:
  - name: web
    transport: local
    resources:
      - directory: /etc/watched
        mode: "0755"
      - file: /etc/watched/app.conf
        content: "declared\n"
        mode: "0644"
        requires: [directory:/etc/watched]
verify:
  - name: conf-present
    command: 'test -f "$DRIFTLESS_ROOT/etc/watched/app.conf"'
  - name: smoke
    junit: >-
      echo '<testsuite name="smoke"><testcase name="conf"/></testsuite>'
`
	brokenEnv = `environment: broken
hosts:
  - name: canary
    transport: local
    resources:
      - directory: /srv/broken
        mode: "0755"
verify:
  - name: always-fails
    command: "false"
`
)

// testDashboardAndAlertMetricsAreExported runs the built daemon on a local
// folder source, makes it produce every kind of series (a reconcile, a
// verification, a rollback, a drift, a source read, a webhook request),
// scrapes /metrics, and fails when the Grafana dashboard or the alert
// rules use a driftless_* metric the daemon does not export.
func testDashboardAndAlertMetricsAreExported(t *testing.T, bin string) {
	want, err := monitoring.MetricNames()
	if err != nil {
		t.Fatalf("metric names of the monitoring files: %v", err)
	}
	if len(want) == 0 {
		t.Fatal("the monitoring files use no driftless_* metric: nothing would be checked")
	}
	// The cluster's families exist only in cluster mode: TestServeCluster
	// (cmd/driftless) checks them on three replicas of the built binary.
	want = slices.DeleteFunc(want, clusterOnly)
	dir := t.TempDir()
	repo, sandbox := filepath.Join(dir, "repo"), filepath.Join(dir, "sandbox")
	// A Git source too, for the metrics only Git sources have; its
	// repository is empty (no branch yet), so it stays down.
	git := gitserver.New(t)
	gitURL := git.CreateRepo("infra")
	secret := []byte(rand.Text())
	files := map[string][]byte{
		"repo/environments/watched.yaml": []byte(watchedEnv),
		"repo/environments/broken.yaml":  []byte(brokenEnv),
		"github.secret":                  append(secret, '\n'),
		"driftless.yaml": []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
drift_interval: 1s
sources:
  - name: repo
    local: {path: %s, interval: 1s}
  - name: infra
    git: {url: %s, branch: main, interval: 1h}
webhooks:
  github: {file: %s}
`, filepath.Join(dir, "state"), repo, gitURL, filepath.Join(dir, "github.secret"))),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, bin, filepath.Join(dir, "driftless.yaml"), "-sandbox-root", sandbox)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The first reconcile writes the declared file under the sandbox,
	// where each local host has a folder named after it.
	conf := filepath.Join(sandbox, "web", "etc", "watched", "app.conf")
	waitFor(ctx, t, "the declared file to be applied", func() bool {
		b, err := os.ReadFile(conf)
		return err == nil && string(b) == "declared\n"
	})

	// One signed GitHub push, as GitHub sends it. No source follows that
	// repository, so it is acknowledged and ignored (202), and counted.
	body := []byte(`{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"example/infra","clone_url":"https://git.example/example/infra.git"}}`)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", "delivery-"+rand.Text())
	h.Set("X-Hub-Signature-256", "sha256="+webhook.SignHex(secret, body))
	if code, err := d.post(ctx, "/hooks/github", h, body); err != nil || code != http.StatusAccepted {
		t.Fatalf("signed GitHub push: status %d, %v; want 202", code, err)
	}

	// A change behind the daemon's back: warn mode reports it, never heals it.
	if err := os.WriteFile(conf, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var scrape exposition
	waitFor(ctx, t, "drift, rollback, webhook and every monitored metric on /metrics", func() bool {
		text, err := d.get(ctx, "/metrics")
		if err != nil {
			t.Logf("scrape: %v", err)
			return false
		}
		if scrape, err = parseExposition(text); err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		drift, _ := scrape.find("driftless_drift_resources", `environment="watched"`, `mode="warn"`)
		_, rolledBack := scrape.find("driftless_rollbacks_total", `environment="broken"`)
		_, hooked := scrape.find("driftless_webhook_requests_total", `provider="github"`)
		return drift >= 1 && rolledBack && hooked && len(scrape.missing(want)) == 0
	}, func() string {
		return fmt.Sprintf("families missing from /metrics: %v", scrape.missing(want))
	})

	if b, err := os.ReadFile(conf); err != nil || string(b) != "edited by hand\n" {
		t.Errorf("warn mode changed the drifted file: %q, %v", b, err)
	}
	checkSampleNames(t, scrape)
	checkDocumented(t, scrape)
}

// clusterOnly says whether a family exists only in cluster mode.
func clusterOnly(name string) bool { return strings.HasPrefix(name, "driftless_cluster_") }

// checkDocumented fails for every driftless_* family on /metrics that the
// metrics table of docs/operations.md lacks.
func checkDocumented(t *testing.T, scrape exposition) {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`(driftless_[a-z0-9_]+)`\\s*\\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	if len(documented) < 10 {
		t.Fatalf("only %d metrics found in the table of docs/operations.md", len(documented))
	}
	for name := range scrape.types {
		if strings.HasPrefix(name, "driftless_") && !documented[name] {
			t.Errorf("%s is exported but not in the metrics table of docs/operations.md", name)
		}
	}
}

// checkSampleNames checks every driftless_* name the monitoring files
// query exists as a sample: a histogram is queried through its _bucket,
// _sum or _count series, never by its family name, which has no sample.
func checkSampleNames(t *testing.T, scrape exposition) {
	t.Helper()
	qs, err := monitoring.Queries()
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\bdriftless_[a-zA-Z0-9_]+`)
	var bad []string
	for _, q := range qs {
		for _, n := range name.FindAllString(q.Expr, -1) {
			if !scrape.names[n] && !clusterOnly(n) && !slices.Contains(bad, q.From+": "+n) {
				bad = append(bad, q.From+": "+n)
			}
		}
	}
	for _, b := range bad {
		t.Errorf("%s has no sample on /metrics (a histogram is queried as _bucket, _sum or _count)", b)
	}
}

// waitFor polls cond until it holds or ctx ends; on timeout the optional
// why explains what was still missing.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool, why ...func() string) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			msg := ""
			for _, w := range why {
				msg += "; " + w()
			}
			t.Fatalf("timed out waiting for %s%s", what, msg)
		case <-tick.C:
		}
	}
}
