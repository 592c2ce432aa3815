package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// verifier runs the declared checks with the verify package.
func verifier(log zerolog.Logger) reconciler.Verifier {
	return reconciler.VerifyRunner(verify.New(verify.Options{Logger: log}))
}

// actionMark is the one-character sign of an action in a plan listing.
func actionMark(a targets.Action) string {
	switch a {
	case targets.Create:
		return "+"
	case targets.Update:
		return "~"
	case targets.Delete:
		return "-"
	}
	return " "
}

// writePlans prints plans for people: per environment and host, each
// resource that would change with its diff indented below it.
func writePlans(w io.Writer, plans []*status.Plan) {
	for _, p := range plans {
		fmt.Fprintf(w, "environment %s (commit %.12s)\n", p.Environment, p.Commit)
		for _, h := range p.Hosts {
			if h.Err != "" {
				fmt.Fprintf(w, "  host %s: error: %s\n", h.Host, h.Err)
				continue
			}
			n := 0
			for _, c := range h.Changes {
				if c.Action != targets.NoChange {
					n++
				}
			}
			fmt.Fprintf(w, "  host %s: %d to change, %d unchanged\n", h.Host, n, len(h.Changes)-n)
			for _, c := range h.Changes {
				if c.Action == targets.NoChange {
					continue
				}
				fmt.Fprintf(w, "    %s %s (%s)\n", actionMark(c.Action), c.ID, c.Action)
				if c.Diff != "" {
					for _, line := range strings.Split(strings.TrimRight(c.Diff, "\n"), "\n") {
						fmt.Fprintf(w, "        %s\n", line)
					}
				}
			}
		}
	}
}

// planCounts returns how many resources would change and how many hosts failed to plan.
func planCounts(plans []*status.Plan) (changes, failed int) {
	for _, p := range plans {
		for _, h := range p.Hosts {
			if h.Err != "" {
				failed++
			}
			for _, c := range h.Changes {
				if c.Action != targets.NoChange {
					changes++
				}
			}
		}
	}
	return changes, failed
}
