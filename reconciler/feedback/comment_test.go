package feedback

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

func TestRenderPlanComment(t *testing.T) {
	r := report(status.StatusPreview, "")
	r.PullRequest = 3
	r.Plan = &status.Plan{Environment: "staging", Commit: sha, Hosts: []status.HostPlan{
		{Host: "web-1", Changes: []targets.Change{
			{ID: "file:/srv/README.md", Action: targets.Update, Diff: "-old\n+```go\n+code\n+```\n"},
			{ID: "package:nginx", Action: targets.Create},
			{ID: "service:app", Action: targets.NoChange},
			{ID: "symlink:/etc/x", Action: targets.Delete},
		}},
		{Host: "web-2", Err: "dial tcp 10.0.0.12:22: connect: connection refused"},
	}}
	body := renderPlanComment(r)
	for _, want := range []string{
		"<!-- driftless:plan:staging -->\n",
		"**Plan:** 1 to create, 1 to update, 1 to delete, 1 unchanged on 2 hosts (1 could not be observed).",
		"<code>0123456</code>",
		"````diff\n-old\n+```go\n+code\n+```\n````",
		"- <b>create</b> <code>package:nginx</code>",
		"- <b>delete</b> <code>symlink:/etc/x</code>",
		"- 1 unchanged",
		"connection refused",
		"(http://driftless.test/environments/staging)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("comment lacks %q:\n%s", want, body)
		}
	}
	if !strings.HasPrefix(body, planMarker("staging")) {
		t.Error("the marker is not the first line")
	}
}

func TestRenderPlanCommentStaysUnderGitHubLimit(t *testing.T) {
	r := report(status.StatusPreview, "")
	var changes []targets.Change
	for i := range 40 {
		changes = append(changes, targets.Change{ID: "file:/f" + strings.Repeat("x", i), Action: targets.Update,
			Diff: strings.Repeat("+é line of a big file\n", 2000)})
	}
	// One diff without any line end must still be cut on a rune boundary.
	changes = append(changes, targets.Change{ID: "file:/one-line", Action: targets.Update, Diff: strings.Repeat("é", 30000)})
	r.Plan = &status.Plan{Environment: "staging", Commit: sha, Hosts: []status.HostPlan{{Host: "web-1", Changes: changes[40:]}, {Host: "web-2", Changes: changes[:40]}}}
	body := renderPlanComment(r)
	if len(body) > 65536 {
		t.Fatalf("comment of %d bytes is over GitHub's limit", len(body))
	}
	if !utf8.ValidString(body) {
		t.Error("comment is not valid UTF-8")
	}
	if !strings.Contains(body, "diffs and 0 hosts are not shown") || !strings.Contains(body, "(diff not shown)") {
		t.Error("omitted diffs are not announced")
	}
	if !strings.Contains(body, "more bytes") {
		t.Error("a clipped diff is not marked")
	}
	if n := strings.Count(body, "<b>update</b>"); n != 41 {
		t.Errorf("changes listed: %d, want 41", n)
	}
}

func TestRenderPlanCommentManyHostsStayUnderLimit(t *testing.T) {
	r := report(status.StatusPreview, "")
	r.Plan = &status.Plan{Environment: "staging", Commit: sha}
	for h := range 3000 {
		r.Plan.Hosts = append(r.Plan.Hosts, status.HostPlan{Host: fmt.Sprintf("web-%d", h), Changes: []targets.Change{
			{ID: "package:nginx", Action: targets.Create}, {ID: "file:/a", Action: targets.Update, Diff: "-a\n+b\n"},
		}})
	}
	body := renderPlanComment(r)
	if len(body) > 65536 {
		t.Fatalf("comment of %d bytes is over GitHub's limit", len(body))
	}
	if !strings.Contains(body, "3000 to create, 3000 to update") || !strings.Contains(body, "hosts are not shown") {
		t.Errorf("summary or omission note missing:\n%s", body[len(body)-400:])
	}
}

func FuzzRenderPlanComment(f *testing.F) {
	f.Add("staging", "file:/a", "-a\n+b\n", "")
	f.Add("p`rod", "x", "```", "err <b>")
	f.Fuzz(func(t *testing.T, env, id, diff, hostErr string) {
		r := status.Report{Environment: env, Commit: sha, Status: status.StatusPreview, PullRequest: 1,
			Plan: &status.Plan{Hosts: []status.HostPlan{{Host: "h", Err: hostErr, Changes: []targets.Change{{ID: id, Action: targets.Update, Diff: diff}}}}}}
		body := renderPlanComment(r)
		if !strings.HasPrefix(body, planMarker(env)) {
			t.Fatal("marker missing")
		}
		// A diff must never close its fence early: the fence is longer than any backtick run in it.
		if diff != "" && len(body) < commentBudget && !strings.Contains(body, strings.TrimRight(diff, "\n")) {
			t.Fatalf("diff lost")
		}
	})
}
