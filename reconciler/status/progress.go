package status

import "sync"

// Step names what is being done to a host, in progress events.
type Step string

// The steps of a run on one host, in the order they happen.
const (
	StepObserve  Step = "observe"
	StepSnapshot Step = "snapshot"
	StepApply    Step = "apply"
	StepVerify   Step = "verify"
	StepRollback Step = "rollback"
	// StepDone ends a host's part of a batch (Status ok or failed).
	StepDone Step = "done"
)

// The statuses of a progress event.
const (
	// StatusStarted: the step begins.
	StatusStarted = "started"
	// StatusOK: the step (or a check's attempt) succeeded.
	StatusOK = "ok"
	// StatusFailed: the step (or a check's last attempt) failed.
	StatusFailed = "failed"
	// StatusRetrying: a check's attempt failed and another follows.
	StatusRetrying = "retrying"
)

// Event is one step of the work on one host as it happens: what a progress
// display shows. It carries names and counts only, never a diff, a check's
// reason or an error text (those are in the run's record).
type Event struct {
	// Seq numbers the events of a ProgressLog (0 until one records it).
	Seq         uint64 `json:"seq"`
	Environment string `json:"environment"`
	// Batch is the rollout batch, from 1 of Batches; 0 outside batches
	// (observing, a drift pass's correction, a rollback).
	Batch   int    `json:"batch,omitempty"`
	Batches int    `json:"batches,omitempty"`
	Host    string `json:"host"`
	Step    Step   `json:"step"`
	Status  string `json:"status"`
	// Count is what the step works on: changes found by observe,
	// resources snapshotted, applied or restored, checks to verify.
	Count int `json:"count,omitempty"`
	// Check, Attempt and Attempts describe one attempt of a check:
	// attempt Attempt of at most Attempts.
	Check    string `json:"check,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
}

// Progress receives the events of every run as they happen
// (Options.Progress). It is called from the goroutines doing the work, so
// it must be safe for concurrent use and return quickly.
type Progress func(Event)

// ProgressLog keeps the newest events of each environment, numbered in
// the order they came, for GET /api/v1/environments/{name}/progress: a
// client following a sync or a rollback reads what came after the last
// event it saw. Its memory is bounded: size events per environment.
type ProgressLog struct {
	size int
	mu   sync.Mutex
	seq  uint64
	envs map[string][]Event
}

// DefaultProgressSize is how many events a ProgressLog keeps per environment.
const DefaultProgressSize = 1000

// NewProgressLog returns a log keeping size events per environment
// (DefaultProgressSize when size <= 0).
func NewProgressLog(size int) *ProgressLog {
	if size <= 0 {
		size = DefaultProgressSize
	}
	return &ProgressLog{size: size, envs: map[string][]Event{}}
}

// Add records e; it is a Progress.
func (l *ProgressLog) Add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	evs := append(l.envs[e.Environment], e)
	if len(evs) >= 2*l.size {
		// Copied down once every size events rather than resliced, so
		// the array stays at most twice size and adding stays cheap.
		evs = evs[:copy(evs, evs[len(evs)-l.size:])]
	}
	l.envs[e.Environment] = evs
}

// Since returns the environment's events numbered above after, oldest
// first, and the number to ask after next time (the newest event's of
// the whole log, so a client that starts with after=0 and no interest in
// the past skips it by reading next).
func (l *ProgressLog) Since(env string, after uint64) ([]Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.envs[env]
	if len(evs) > l.size {
		evs = evs[len(evs)-l.size:]
	}
	i := len(evs)
	for i > 0 && evs[i-1].Seq > after {
		i--
	}
	return append([]Event(nil), evs[i:]...), l.seq
}
