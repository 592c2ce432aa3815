package status

import (
	"time"

	"github.com/driftless/driftless/reconciler/store"
)

// The states of an environment, as EnvStatus.State and the status label
// of driftless_environment_info.
const (
	StateUnknown     = "unknown"
	StateSynced      = "synced"
	StateApplying    = "applying"
	StateRollingBack = "rolling_back"
	StateRolledBack  = "rolled_back"
	StateFailed      = "failed"
	StateDrifted     = "drifted"
	// StateBlocked is an environment whose rollback could not finish (a
	// host it must restore cannot be reached): every pass tries to finish
	// it, and meanwhile the reachable hosts are observed and their drift
	// reported (corrected where the rollback has nothing to restore).
	StateBlocked = "blocked"
)

// The states of a gated revision, shown as the environment's state while
// the applied revision is otherwise in order.
const (
	// StateWaiting: promotion waits for the upstreams (or their soak).
	StateWaiting = "waiting"
	// StateWindowClosed: a deploy window holds the revision back.
	StateWindowClosed = "window_closed"
	// StateAwaitingApproval: the revision waits for an approval.
	StateAwaitingApproval = "awaiting_approval"
	// StateRejected: the revision was rejected; it is never applied.
	StateRejected = "rejected"
)

// StateRemoved is the state of an environment that the newest revision of
// its source no longer declares: it is not reconciled any more (no drift
// passes, no syncs), its hosts are left as they are, and its history is
// kept. A revision that declares it again brings it back.
const StateRemoved = "removed"

// HostStatus says whether a host answered its last observation.
type HostStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// DriftResources counts the host's resources drifted and not
	// corrected (warn mode, or a correction that failed); DriftSince is
	// when the oldest of them was first seen (zero when none).
	DriftResources int       `json:"drift_resources"`
	DriftSince     time.Time `json:"drift_since,omitzero"`
}

// EnvStatus is the state of one environment, for the API and status page.
type EnvStatus struct {
	Name string `json:"name"`
	// Replica, in a cluster, is the replica that owns the environment ("":
	// one daemon, or no replica owns it at this moment).
	Replica string `json:"replica,omitempty"`
	// Applied and LastGood are full commits ("" when none).
	Applied        string   `json:"applied"`
	AppliedSource  string   `json:"applied_source,omitempty"`
	LastGood       string   `json:"last_good"`
	Quarantined    []string `json:"quarantined,omitempty"`
	State          string   `json:"state"`
	DriftResources int      `json:"drift_resources"`
	LastResult     string   `json:"last_result,omitempty"`
	LastError      string   `json:"last_error,omitempty"`
	// Refused says that the newest commit of the environment's source was
	// refused for its signature ("" when not): the applied revision stays.
	Refused string `json:"refused,omitempty"`
	// LastErrorClass says what failed in the last run: plan, apply,
	// verification or interrupted.
	LastErrorClass string `json:"last_error_class,omitempty"`
	// DriftSince is when the oldest open drift was first seen (zero when none).
	DriftSince time.Time `json:"drift_since,omitzero"`
	// LastRun is the end of the last run (zero when none).
	LastRun time.Time    `json:"last_run"`
	Hosts   []HostStatus `json:"hosts,omitempty"`
	// Gate is the revision held back by a gate and why (nil: none).
	Gate *store.Gate `json:"gate,omitempty"`
	// GatePlan is what the revision awaiting approval would change.
	GatePlan *Plan `json:"gate_plan,omitempty"`
	// Decisions are the newest approvals and rejections, newest first.
	Decisions []store.Decision `json:"decisions,omitempty"`
	// PromotionError says why the environment's promotion is refused
	// across the sources' revisions (an upstream no source declares, a
	// cycle); "" when it is not.
	PromotionError string `json:"promotion_error,omitempty"`
	// Class says what kind of trouble the environment is in, which decides
	// what happens next: transient, stalled or waiting ("" when none).
	Class string `json:"class,omitempty"`
	// RetryAt is when a rollout that failed for a transient reason is
	// tried again (zero when none is due); Retries counts the failures in
	// a row that its backoff doubled over.
	RetryAt time.Time `json:"retry_at,omitzero"`
	Retries int       `json:"retries,omitempty"`
	// Preview describes a pull request's preview environment (nil for
	// any other).
	Preview *PreviewStatus `json:"preview,omitempty"`
}

// PreviewStatus is what the API says of a preview environment.
type PreviewStatus struct {
	Template    string    `json:"template"`
	Source      string    `json:"source"`
	PullRequest int       `json:"pull_request"`
	Author      string    `json:"author,omitempty"`
	Trusted     bool      `json:"trusted,omitempty"`
	Head        string    `json:"head"`
	Expires     time.Time `json:"expires"`
	// Hosts are the hosts its provisioner created (none before).
	Hosts        []string `json:"hosts,omitempty"`
	Ended        string   `json:"ended,omitempty"`
	DestroyError string   `json:"destroy_error,omitempty"`
}

// The results of a reconcile run, as recorded in history and counted in
// driftless_reconcile_total.
const (
	ResultSuccess    = "success"
	ResultNoop       = "noop"
	ResultFailed     = "failed"
	ResultRolledBack = "rolled_back"
	// ResultRejected is a revision rejected at its approval gate; it is
	// recorded in history, never applied, and not counted as a reconcile.
	ResultRejected = "rejected"
)

// The triggers of a run: what made the reconciler work.
const (
	TriggerRevision = "revision"
	TriggerDrift    = "drift"
	TriggerSync     = "sync"
	TriggerRollback = "rollback"
	TriggerRecovery = "recovery"
	// TriggerApproval marks the history entry of a rejection.
	TriggerApproval = "approval"
	// TriggerRetry: the backoff after a transient failure ran out.
	TriggerRetry = "retry"
	// TriggerInventory: the environment's inventory changed its hosts.
	TriggerInventory = "inventory"
)

// Error classes of a failed run, for people deciding where to look.
const (
	// ErrorPlan: a host could not be observed (unreachable, or its
	// observation failed).
	ErrorPlan = "plan"
	// ErrorApply: a change failed on a host.
	ErrorApply = "apply"
	// ErrorVerify: a verification check failed after the changes.
	ErrorVerify = "verification"
	// ErrorInterrupted: the daemon stopped during the run, or (cluster)
	// lost the environment or could not record the run's end.
	ErrorInterrupted = "interrupted"
)

// The classes of an environment's trouble (EnvStatus.Class, the reason
// label of driftless_environment_not_ready): each decides what happens
// next, as the condition reasons of Flux's reconcilers do.
const (
	// ClassTransient: the last run failed for a reason that may pass (a
	// host not reached, the daemon stopping, a rollback that could not
	// finish yet). The rollout is tried again after a jittered backoff
	// that doubles up to the drift interval.
	ClassTransient = "transient"
	// ClassStalled: the revision cannot work (it was rolled back, or
	// rejected at its approval gate). Nothing is retried until a new
	// revision arrives.
	ClassStalled = "stalled"
	// ClassWaiting: the revision waits for something else: an upstream
	// environment or its soak, a deploy window, an approval.
	ClassWaiting = "waiting"
)

// Classes lists every class, for series that exist from the start.
func Classes() []string { return []string{ClassTransient, ClassStalled, ClassWaiting} }
