package reconciler

import "github.com/driftless/driftless/reconciler/store"

// The records the reconciler keeps in its store, under the names its
// users know; the store package defines them.
type (
	Run            = store.Run
	ResourceChange = store.ResourceChange
	EnvRecord      = store.EnvRecord
	Gate           = store.Gate
	Decision       = store.Decision
	PreviewRecord  = store.PreviewRecord
	Journal        = store.Journal
	JournalEntry   = store.JournalEntry
	Store          = store.Store
	BoltStore      = store.BoltStore
)

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
	// TriggerInventory: the environment's inventory changed its hosts.
	TriggerInventory = "inventory"
)

// Error classes of a failed run, for people deciding where to look.
const (
	// ErrorPlan: a host could not be observed (unreachable, a probe failed).
	ErrorPlan = "plan"
	// ErrorApply: a change failed on a host.
	ErrorApply = "apply"
	// ErrorVerify: a verification check failed after the changes.
	ErrorVerify = "verification"
	// ErrorInterrupted: the daemon stopped during the run.
	ErrorInterrupted = "interrupted"
)
