// Package monitoring holds driftless's Prometheus alert rules
// (alerts.yaml) and Grafana dashboard (grafana-dashboard.json), embedded,
// with helpers that list the PromQL they contain and every driftless_*
// metric it refers to, so tests can check those metrics exist on a
// running daemon.
package monitoring

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The files are embedded so that the daemon can serve or install them
// and tests need no path to find them.
var (
	//go:embed alerts.yaml
	alertRules []byte
	//go:embed grafana-dashboard.json
	dashboardJSON []byte
)

// AlertRules returns a copy of alerts.yaml, a Prometheus rule file.
func AlertRules() []byte { return append([]byte(nil), alertRules...) }

// Dashboard returns a copy of grafana-dashboard.json, a Grafana dashboard.
func Dashboard() []byte { return append([]byte(nil), dashboardJSON...) }

// Query is one PromQL expression and where it comes from.
type Query struct {
	// From names its place: "alert DriftlessRollback", "panel Reconciles
	// by result", "variable host", "annotation Rollbacks".
	From string
	// Expr is the expression as written, Grafana variables included.
	Expr string
}

// Queries returns every PromQL expression of the alert rules and of the
// dashboard (panel targets, template variables, annotations).
func Queries() ([]Query, error) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(alertRules, &rules); err != nil {
		return nil, fmt.Errorf("parse alerts.yaml: %w", err)
	}
	var qs []Query
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Record != "" {
				name = "record " + r.Record
			}
			qs = append(qs, Query{From: name, Expr: strings.TrimSpace(r.Expr)})
		}
	}
	dq, err := dashboardQueries()
	if err != nil {
		return nil, err
	}
	return append(qs, dq...), nil
}

// dashboard is the part of Grafana's dashboard model that holds queries.
type dashboard struct {
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	// Panels holds the panels of a collapsed row.
	Panels []panel `json:"panels"`
}

func dashboardQueries() ([]Query, error) {
	var d dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("parse grafana-dashboard.json: %w", err)
	}
	var qs []Query
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr != "" {
					qs = append(qs, Query{From: "panel " + p.Title, Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, Query{From: "annotation " + a.Name, Expr: a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// Grafana writes a variable's query either as a string or as an
		// object with a "query" field, depending on its version.
		var s string
		if err := json.Unmarshal(v.Query, &s); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("parse query of dashboard variable %s: %w", v.Name, err)
			}
			s = obj.Query
		}
		qs = append(qs, Query{From: "variable " + v.Name, Expr: s})
	}
	return qs, nil
}

var metricName = regexp.MustCompile(`\bdriftless_[a-zA-Z0-9_]+`)

// MetricNames returns, sorted and without repeats, the name of every
// driftless_* metric family that the alert rules and the dashboard refer
// to. A histogram's series (_bucket, _sum, _count) count as the family
// they belong to, which is the name a scrape of /metrics declares in its
// "# TYPE" line.
func MetricNames() ([]string, error) {
	qs, err := Queries()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, q := range qs {
		for _, m := range metricName.FindAllString(q.Expr, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				m = strings.TrimSuffix(m, suffix)
			}
			seen[m] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
