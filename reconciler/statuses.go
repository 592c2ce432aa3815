package reconciler

import "github.com/driftless/driftless/reconciler/status"

// What the reconciler tells others (reports, environment statuses,
// progress events), under the names its users know; the status package
// defines them, so that reporters and the API need not import the
// reconciler.
type (
	Plan          = status.Plan
	HostPlan      = status.HostPlan
	Report        = status.Report
	GateInfo      = status.GateInfo
	Reporter      = status.Reporter
	HostStatus    = status.HostStatus
	EnvStatus     = status.EnvStatus
	PreviewStatus = status.PreviewStatus
	Step          = status.Step
	Event         = status.Event
	Progress      = status.Progress
	ProgressLog   = status.ProgressLog
)

// The status package's constants: report statuses, environment states,
// progress steps and statuses, run results, triggers and error classes.
const (
	StatusPending         = status.StatusPending
	StatusSuccess         = status.StatusSuccess
	StatusFailure         = status.StatusFailure
	StatusRolledBack      = status.StatusRolledBack
	StatusDrift           = status.StatusDrift
	StatusPreview         = status.StatusPreview
	StatusRemoved         = status.StatusRemoved
	StateUnknown          = status.StateUnknown
	StateSynced           = status.StateSynced
	StateApplying         = status.StateApplying
	StateRollingBack      = status.StateRollingBack
	StateRolledBack       = status.StateRolledBack
	StateFailed           = status.StateFailed
	StateDrifted          = status.StateDrifted
	StateBlocked          = status.StateBlocked
	StateWaiting          = status.StateWaiting
	StateWindowClosed     = status.StateWindowClosed
	StateAwaitingApproval = status.StateAwaitingApproval
	StateRejected         = status.StateRejected
	StateRemoved          = status.StateRemoved
	StepObserve           = status.StepObserve
	StepSnapshot          = status.StepSnapshot
	StepApply             = status.StepApply
	StepVerify            = status.StepVerify
	StepRollback          = status.StepRollback
	StepDone              = status.StepDone
	StatusStarted         = status.StatusStarted
	StatusOK              = status.StatusOK
	StatusFailed          = status.StatusFailed
	StatusRetrying        = status.StatusRetrying
	DefaultProgressSize   = status.DefaultProgressSize
	ClassTransient        = status.ClassTransient
	ClassStalled          = status.ClassStalled
	ClassWaiting          = status.ClassWaiting
	TriggerRetry          = status.TriggerRetry
	ResultSuccess         = status.ResultSuccess
	ResultNoop            = status.ResultNoop
	ResultFailed          = status.ResultFailed
	ResultRolledBack      = status.ResultRolledBack
	ResultRejected        = status.ResultRejected
	TriggerRevision       = status.TriggerRevision
	TriggerDrift          = status.TriggerDrift
	TriggerSync           = status.TriggerSync
	TriggerRollback       = status.TriggerRollback
	TriggerRecovery       = status.TriggerRecovery
	TriggerApproval       = status.TriggerApproval
	TriggerInventory      = status.TriggerInventory
	ErrorPlan             = status.ErrorPlan
	ErrorApply            = status.ErrorApply
	ErrorVerify           = status.ErrorVerify
	ErrorInterrupted      = status.ErrorInterrupted
)
