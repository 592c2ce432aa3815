package reconciler

import (
	"context"
	"time"

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
	Plan     *Plan     `json:"plan,omitempty"`
	Time     time.Time `json:"time"`
}

// Reporter receives reports. The reconciler calls it off the rollout's
// path: a slow or failing reporter never blocks a rollout.
type Reporter interface {
	Report(ctx context.Context, r Report)
}
