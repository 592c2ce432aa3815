package feedback

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

// BenchmarkRenderPlanComment renders the comment of a large plan: 50 hosts
// of 40 resources, a quarter of them files with a diff, so most diffs fall
// past the size budget. It shows the rendering stays cheap and bounded.
func BenchmarkRenderPlanComment(b *testing.B) {
	r := report(status.StatusPreview, "")
	r.PullRequest = 1
	r.Plan = &status.Plan{Environment: "staging", Commit: sha}
	diff := strings.Repeat("-old line of configuration\n+new line of configuration\n", 20)
	for h := range 50 {
		hp := status.HostPlan{Host: fmt.Sprintf("web-%d", h)}
		for i := range 40 {
			ch := targets.Change{ID: fmt.Sprintf("package:p%d", i), Action: targets.NoChange}
			if i%4 == 0 {
				ch = targets.Change{ID: fmt.Sprintf("file:/etc/app/%d.conf", i), Action: targets.Update, Diff: diff}
			}
			hp.Changes = append(hp.Changes, ch)
		}
		r.Plan.Hosts = append(r.Plan.Hosts, hp)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(renderPlanComment(r))
	}
	b.ReportMetric(float64(n), "bytes/comment")
}

// BenchmarkGitHubReport is one success report with deployments on, against
// the local GitHub stand-in: a commit status, a deployment lookup or
// creation, and a deployment status.
func BenchmarkGitHubReport(b *testing.B) {
	f, srv := newFakeGitHub(b, "")
	g, err := NewGitHub(HostAPIConfig{Token: "tok", Repository: "ops/infra", Deployments: true},
		Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	g.client.BaseURL, _ = g.client.BaseURL.Parse(srv.URL + "/")
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		r := report(status.StatusSuccess, "applied")
		r.Commit = fmt.Sprintf("%040d", i)
		g.Report(ctx, r)
	}
	if len(f.got("POST /repos/ops/infra/statuses/")) < b.N {
		b.Fatal("statuses were not all sent")
	}
}
