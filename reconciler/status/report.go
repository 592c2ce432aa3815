package status

import (
	"context"
	"fmt"
	"time"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// Plan is what applying a revision to an environment would change.
type Plan struct {
	Environment string     `json:"environment"`
	Commit      string     `json:"commit"`
	Hosts       []HostPlan `json:"hosts"`
}

// Summary says in one line what a plan changes.
func (p *Plan) Summary() string {
	n, hosts, failed := 0, 0, 0
	for _, h := range p.Hosts {
		if h.Err != "" {
			failed++
		}
		c := 0
		for _, ch := range h.Changes {
			if ch.Action != "none" {
				c++
			}
		}
		if c > 0 {
			hosts++
			n += c
		}
	}
	s := fmt.Sprintf("%d change(s) on %d host(s)", n, hosts)
	if failed > 0 {
		s += fmt.Sprintf(", %d host(s) not observed", failed)
	}
	return s
}

// HostPlan is the plan of one host: every declared resource's change
// (NoChange included), or the error that kept the host from being observed.
type HostPlan struct {
	Host    string           `json:"host"`
	Changes []targets.Change `json:"changes"`
	Err     string           `json:"error,omitempty"`
}

// Report statuses.
const (
	StatusPending    = "pending"
	StatusSuccess    = "success"
	StatusFailure    = "failure"
	StatusRolledBack = "rolled_back"
	StatusDrift      = "drift"
	StatusPreview    = "preview"
	// StatusRemoved is the report of a preview environment torn down.
	StatusRemoved = "removed"
)

// Report is one thing worth telling the outside world: a Git host (commit
// status, deployment, pull request comment) or people (chat, email).
type Report struct {
	Environment string `json:"environment"`
	Source      string `json:"source,omitempty"`
	Commit      string `json:"commit"`
	Status      string `json:"status"`
	Description string `json:"description"`
	// URL links to the status page of the environment.
	URL string `json:"url,omitempty"`
	// PullRequest and Plan are set for previews of a pull request.
	PullRequest int `json:"pull_request,omitempty"`
	// Gate is set on a pending report of a revision held at a gate: the
	// gate's state (waiting, window_closed, awaiting_approval, rejected).
	Gate string `json:"gate,omitempty"`
	// Decision names who approved the applied revision, or rejected it.
	Decision *store.Decision `json:"decision,omitempty"`
	// Gates says, on a preview and on the report of a revision awaiting
	// approval, what the environment's gates ask of a revision.
	Gates *GateInfo `json:"gates,omitempty"`
	Plan  *Plan     `json:"plan,omitempty"`
	// Tests are the run's junit test counts, for the people who test.
	Tests *verify.Tests `json:"tests,omitempty"`
	Time  time.Time     `json:"time"`
}

// GateInfo is what an environment's gates ask of a revision before it is
// applied: promotion from upstreams (after a soak), open deploy windows,
// an approval (by API token, or by a comment of one of Approvers).
type GateInfo struct {
	PromoteFrom []string      `json:"promote_from,omitempty"`
	Soak        time.Duration `json:"soak,omitempty"`
	Windows     bool          `json:"windows,omitempty"`
	Approval    bool          `json:"approval,omitempty"`
	Approvers   []string      `json:"approvers,omitempty"`
}

// Reporter receives reports. The reconciler calls it off the rollout's
// path: a slow or failing reporter never blocks a rollout.
type Reporter interface {
	Report(ctx context.Context, r Report)
}
