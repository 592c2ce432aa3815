package feedback

import (
	"fmt"
	"html"
	"strings"
	"unicode/utf8"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

// Comment sizes. GitHub refuses a comment body over 65,536 characters; the
// budget leaves room for the closing lines, and one diff never takes more
// than maxDiff so that a single huge file does not hide every other change.
const (
	commentBudget = 60000
	maxDiff       = 20000
)

// planMarker is the hidden first line that finds the comment of an
// environment on a pull request again, so that each push edits it in place.
func planMarker(env string) string { return "<!-- driftless:plan:" + env + " -->" }

// planCounts are the totals of a plan's summary line.
type planCounts struct {
	create, update, delete, unchanged int
	hosts, failed                     int
}

func countPlan(p *status.Plan) planCounts {
	var c planCounts
	for _, h := range p.Hosts {
		c.hosts++
		if h.Err != "" {
			c.failed++
		}
		for _, ch := range h.Changes {
			switch ch.Action {
			case targets.Create:
				c.create++
			case targets.Update:
				c.update++
			case targets.Delete:
				c.delete++
			default:
				c.unchanged++
			}
		}
	}
	return c
}

func (c planCounts) String() string {
	s := fmt.Sprintf("%d to create, %d to update, %d to delete, %d unchanged on %d %s",
		c.create, c.update, c.delete, c.unchanged, c.hosts, plural(c.hosts, "host", "hosts"))
	if c.failed > 0 {
		s += fmt.Sprintf(" (%d could not be observed)", c.failed)
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// renderPlanComment is the Markdown body of the pull request comment for
// one environment: the marker, then for a preview what merging would
// apply, or for a revision awaiting approval that it waits; a summary line
// with the counts, per host every change (file diffs folded in <details>
// blocks), and what the environment's gates ask before it is applied.
func renderPlanComment(r status.Report) string {
	var b strings.Builder
	env := html.EscapeString(r.Environment)
	b.WriteString(planMarker(r.Environment) + "\n")
	awaiting := r.Gate == status.StateAwaitingApproval
	if awaiting {
		fmt.Fprintf(&b, "### driftless: <code>%s</code> awaits approval\n\n", env)
	} else {
		fmt.Fprintf(&b, "### driftless plan for <code>%s</code>\n\n", env)
	}
	if r.Plan == nil {
		fmt.Fprintf(&b, "No plan could be made for commit <code>%s</code>: %s\n", kit.Abbrev(r.Commit), html.EscapeString(r.Description))
		return b.String()
	}
	c := countPlan(r.Plan)
	if awaiting {
		fmt.Fprintf(&b, "Commit <code>%s</code> passed its promotion rules and deploy windows; it is applied to <b>%s</b> once approved.\n\n**Plan:** %s.\n",
			kit.Abbrev(r.Commit), env, c)
	} else {
		fmt.Fprintf(&b, "Merging this pull request would apply commit <code>%s</code> to <b>%s</b>.\n\n**Plan:** %s.\n",
			kit.Abbrev(r.Commit), env, c)
	}
	// The gates come last, after the plan, but their size is kept aside.
	gates := renderGates(r, awaiting)
	budget := commentBudget - len(gates)
	omittedDiffs, omittedHosts := 0, 0
	for _, h := range r.Plan.Hosts {
		var hb strings.Builder
		omittedDiffs += renderHost(&hb, h, budget-b.Len())
		// A host whose section no longer fits is left out whole rather than cut
		// in the middle; the summary line above still counts its changes.
		if b.Len()+hb.Len() > budget {
			omittedHosts++
			continue
		}
		b.WriteString(hb.String())
	}
	if omittedDiffs > 0 || omittedHosts > 0 {
		fmt.Fprintf(&b, "\n_The comment reached its size limit: %d %s and %d %s not shown. `driftless plan` shows them all._\n",
			omittedDiffs, plural(omittedDiffs, "diff", "diffs"), omittedHosts, plural(omittedHosts, "host is", "hosts are"))
	}
	b.WriteString(gates)
	if r.URL != "" {
		fmt.Fprintf(&b, "\n[Status of %s](%s)\n", env, r.URL)
	}
	return b.String()
}

// renderGates says what the environment's gates ask of the revision before
// it is applied, and how to approve it ("" without gates).
func renderGates(r status.Report, awaiting bool) string {
	g := r.Gates
	if g == nil {
		return ""
	}
	var b strings.Builder
	env := html.EscapeString(r.Environment)
	if !awaiting {
		var waits []string
		if len(g.PromoteFrom) > 0 {
			w := "promotion from " + html.EscapeString(strings.Join(g.PromoteFrom, ", "))
			if g.Soak > 0 {
				w += " (verified there and kept good for " + g.Soak.String() + ")"
			}
			waits = append(waits, w)
		}
		if g.Windows {
			waits = append(waits, "an open deploy window")
		}
		if g.Approval {
			waits = append(waits, "<b>approval</b>")
		}
		fmt.Fprintf(&b, "\n**Gates:** once merged, the revision waits for %s before it is applied to <b>%s</b>.\n", strings.Join(waits, ", then "), env)
	}
	if !g.Approval {
		return b.String()
	}
	commit := kit.Abbrev(r.Commit)
	if !awaiting {
		commit = "COMMIT"
	}
	if len(g.Approvers) > 0 {
		fmt.Fprintf(&b, "\nTo approve, an approver (%s) comments `/driftless approve %s` on this pull request; `/driftless reject %s` rejects. "+
			"A comment decides for the pull request's head at the time of the comment, and for its merge onto an unchanged base; "+
			"a squash or rebase merge, or a merge onto a moved base, needs the command line below.\n",
			html.EscapeString(strings.Join(g.Approvers, ", ")), r.Environment, r.Environment)
		if awaiting {
			fmt.Fprintf(&b, "Naming the commit, `/driftless approve %s %s`, approves it only while it is the head "+
				"(a preview environment's approval must name it).\n", r.Environment, commit)
		}
	}
	fmt.Fprintf(&b, "\nWith an API token of the approve scope: `driftless approve %s %s` (or `driftless reject`).\n", r.Environment, commit)
	return b.String()
}

// renderHost writes one host's section and returns how many diffs it left
// out to keep the section within budget bytes.
func renderHost(b *strings.Builder, h status.HostPlan, budget int) (omitted int) {
	fmt.Fprintf(b, "\n#### <code>%s</code>\n\n", html.EscapeString(h.Host))
	if h.Err != "" {
		b.WriteString("Could not be observed:\n\n" + fenced("text", h.Err) + "\n")
	}
	unchanged := 0
	for _, ch := range h.Changes {
		if ch.Action == targets.NoChange || ch.Action == "" {
			unchanged++
			continue
		}
		label := fmt.Sprintf("<b>%s</b> <code>%s</code>", html.EscapeString(string(ch.Action)), html.EscapeString(ch.ID))
		if ch.Diff == "" {
			b.WriteString("- " + label + "\n")
			continue
		}
		// The clipped diff alone is a lower bound of the block's size: past the
		// budget, the block is not even built.
		if b.Len()+min(len(ch.Diff), maxDiff) > budget {
			omitted++
			b.WriteString("- " + label + " (diff not shown)\n")
			continue
		}
		block := fmt.Sprintf("\n<details><summary>%s</summary>\n\n%s\n</details>\n\n", label, fenced("diff", clip(ch.Diff, maxDiff)))
		if b.Len()+len(block) > budget {
			omitted++
			b.WriteString("- " + label + " (diff not shown)\n")
			continue
		}
		b.WriteString(block)
	}
	if unchanged > 0 {
		fmt.Fprintf(b, "- %d unchanged\n", unchanged)
	} else if len(h.Changes) == 0 && h.Err == "" {
		b.WriteString("- no resources\n")
	}
	return omitted
}

// fenced wraps text in a code fence longer than any run of backticks in it,
// so that a diff of a Markdown file cannot close the fence early.
func fenced(lang, text string) string {
	longest, run := 0, 0
	for _, c := range text {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + lang + "\n" + strings.TrimRight(text, "\n") + "\n" + fence + "\n"
}

// clip keeps the first n bytes of s, cut at a line end.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := strings.LastIndexByte(s[:n], '\n')
	if cut < 0 {
		// No line end: cut at a rune boundary so the comment stays valid UTF-8.
		for cut = n; cut > 0 && !utf8.RuneStart(s[cut]); cut-- {
		}
	}
	return s[:cut] + fmt.Sprintf("\n... %d more bytes\n", len(s)-cut)
}
