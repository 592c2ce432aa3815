package reconciler

import (
	"context"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// Plan is what applying a revision to an environment would change.
type Plan struct {
	Environment string     `json:"environment"`
	Commit      string     `json:"commit"`
	Hosts       []HostPlan `json:"hosts"`
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
	Decision *Decision `json:"decision,omitempty"`
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

// gateInfo describes env's gates (nil when it has none).
func gateInfo(env *config.Environment) *GateInfo {
	if env == nil || !env.Gated() {
		return nil
	}
	g := &GateInfo{Windows: len(env.Windows) > 0}
	if p := env.Promote; p != nil {
		g.PromoteFrom, g.Soak = append([]string(nil), p.From...), p.Soak.D()
	}
	if a := env.Approval; a != nil && a.Required {
		g.Approval, g.Approvers = true, append([]string(nil), a.Approvers...)
	}
	return g
}

// Reporter receives reports. The reconciler calls it off the rollout's
// path: a slow or failing reporter never blocks a rollout.
type Reporter interface {
	Report(ctx context.Context, r Report)
}
