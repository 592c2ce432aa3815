package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// Run is one entry of an environment's history.
type Run struct {
	// ID grows with every run of the environment; newer runs have larger ids.
	ID          uint64           `json:"id"`
	Environment string           `json:"environment"`
	Revision    sources.Revision `json:"revision"`
	Trigger     string           `json:"trigger"`
	Start       time.Time        `json:"start"`
	End         time.Time        `json:"end"`
	// Result is one of the reconciler's Result constants (success, noop,
	// failed, rolled_back, rejected).
	Result string `json:"result"`
	// Changes counts the resources changed (applied, corrected or pruned).
	Changes int    `json:"changes"`
	Error   string `json:"error,omitempty"`
	// FailedHosts lists the hosts whose apply or verification failed.
	FailedHosts []string `json:"failed_hosts,omitempty"`
	// Decision is the approval that let the revision through, or the
	// rejection that stopped it.
	Decision *Decision `json:"decision,omitempty"`
	// Forced marks a manual sync that went through a closed deploy window.
	Forced bool `json:"forced,omitempty"`
	// ErrorClass says what kind of failure Error is: one of the
	// reconciler's Error constants ("" when the run did not fail).
	ErrorClass string `json:"error_class,omitempty"`
	// Changed lists the resources the run changed, host by host.
	Changed []ResourceChange `json:"changed,omitempty"`
	// Tests sums the test counts of the run's junit checks over its hosts
	// (nil when none ran).
	Tests *verify.Tests `json:"tests,omitempty"`
}

// ResourceChange is one resource a run changed on one host. Diff is the
// driver's diff, which never holds a secret value (env files name keys
// only); the API and the status page still show it only to a holder of
// the API token.
type ResourceChange struct {
	Host     string `json:"host"`
	Resource string `json:"resource"`
	Action   string `json:"action"`
	Diff     string `json:"diff,omitempty"`
}

// EnvRecord is what the store keeps about one environment between runs
// and across restarts.
type EnvRecord struct {
	Name string `json:"name"`
	// Applied is the revision the hosts were last brought to.
	Applied sources.Revision `json:"applied"`
	// LastGood is the last revision whose rollout succeeded.
	LastGood sources.Revision `json:"last_good"`
	// Quarantined lists commits whose rollout was rolled back; they are
	// not applied again until a newer commit arrives.
	Quarantined []string `json:"quarantined,omitempty"`
	// QuarantinedTrees are the trees of those commits (Git sources): a
	// later commit with the same tree is the same declaration.
	QuarantinedTrees []string `json:"quarantined_trees,omitempty"`
	State            string   `json:"state"`
	LastResult       string   `json:"last_result,omitempty"`
	LastError        string   `json:"last_error,omitempty"`
	// LastErrorClass is the last run's ErrorClass.
	LastErrorClass string    `json:"last_error_class,omitempty"`
	LastRun        time.Time `json:"last_run"`
	// CleanSince is since when the applied revision has been good: its
	// rollout succeeded and no drift pass since found drift or failed
	// (zero while it is not good). Downstream environments soak from it.
	CleanSince time.Time `json:"clean_since,omitempty"`
	// Gate is the revision held back by a gate (nil when none is).
	Gate *Gate `json:"gate,omitempty"`
	// Taken is the last commit that passed the gates (or was rejected at
	// them); it is not offered again, so a manual rollback stays.
	Taken string `json:"taken,omitempty"`
	// Decisions are the newest approvals and rejections, oldest first.
	Decisions []Decision `json:"decisions,omitempty"`
	// Preview is set on a pull request's preview environment.
	Preview *PreviewRecord `json:"preview,omitempty"`
}

// IsQuarantinedRev reports whether rev was rolled back: its commit, or
// another commit with the same tree (the same declaration).
func (e EnvRecord) IsQuarantinedRev(rev sources.Revision) bool {
	return e.IsQuarantined(rev.Commit) || rev.Tree != "" && slices.Contains(e.QuarantinedTrees, rev.Tree)
}

// IsQuarantined reports whether commit was rolled back.
func (e EnvRecord) IsQuarantined(commit string) bool {
	for _, c := range e.Quarantined {
		if c == commit {
			return true
		}
	}
	return false
}

// Gate is where a revision waits before it may be applied. It is part of
// the environment's record, so a waiting revision and the reason survive a
// restart.
type Gate struct {
	// Revision is the commit that waits (for a promotion still waiting
	// for its upstreams: the newest commit they applied, when known).
	Revision sources.Revision `json:"revision"`
	State    string           `json:"state"`
	Reason   string           `json:"reason"`
	// Since is when this revision started waiting at its gates.
	Since time.Time `json:"since"`
	// Until is the end of the soak, when the gate is a soak, or when a
	// closed deploy window next lets the revision through.
	Until time.Time `json:"until,omitzero"`
}

// Decision is an approval or a rejection of one revision.
type Decision struct {
	Environment string `json:"environment"`
	Commit      string `json:"commit"`
	Approved    bool   `json:"approved"`
	// By is who decided: an API token's name ("token:NAME") or a Git host
	// login ("github:alice").
	By string `json:"by"`
	// Via is "api", or the Git host whose pull request comment decided.
	Via         string    `json:"via"`
	PullRequest int       `json:"pull_request,omitempty"`
	At          time.Time `json:"at"`
}

// Decision returns the decision about commit, or nil: a rejection, which
// is final whatever came after it (as the reconciler reads a pull request's comments), else the newest
// approval.
func (e EnvRecord) Decision(commit string) *Decision {
	var approval *Decision
	for i := len(e.Decisions) - 1; i >= 0; i-- {
		if d := e.Decisions[i]; d.Commit == commit {
			if !d.Approved {
				return &d
			}
			if approval == nil {
				approval = &d
			}
		}
	}
	return approval
}

// PreviewRecord is what makes an environment a pull request's preview. It
// is part of the environment's record, so a preview survives a restart.
type PreviewRecord struct {
	Template    string `json:"template"`
	Source      string `json:"source"`
	PullRequest int    `json:"pull_request"`
	Author      string `json:"author,omitempty"`
	// Trusted is true when the author is in the source's
	// previews.trusted_authors: the preview needs no approval.
	Trusted bool `json:"trusted,omitempty"`
	// Head is the pull request's newest head received.
	Head sources.Revision `json:"head"`
	// Expires is when the time to live runs out (the newest head's
	// arrival plus the template's preview_ttl).
	Expires time.Time `json:"expires"`
	// Provision is the provisioner that created the hosts (so that the
	// same one destroys them); Created is what its create printed and
	// Hosts the hosts read from it. Created is nil until hosts exist.
	Provision *config.Provision      `json:"provision,omitempty"`
	Created   []byte                 `json:"created,omitempty"`
	Hosts     []config.InventoryHost `json:"hosts,omitempty"`
	// Ended says why the preview was torn down ("" while it lives);
	// Destroyed is set once its hosts are destroyed.
	Ended     string `json:"ended,omitempty"`
	Destroyed bool   `json:"destroyed,omitempty"`
	// DestroyError is the error of a destroy that failed: its hosts may
	// still exist (Created says which).
	DestroyError string `json:"destroy_error,omitempty"`
}

// Journal is the record of a rollout in progress. It exists from before
// the first resource is touched until the rollout's end is recorded, so an
// open journal means the daemon died in the middle of a rollout or the
// rollout's end could not be recorded (the store unreachable).
type Journal struct {
	Environment string           `json:"environment"`
	Revision    sources.Revision `json:"revision"`
	// Hosts are the hosts the rollout may touch, without their resources:
	// enough to reach them again after a crash.
	Hosts   []config.Host `json:"hosts"`
	Started time.Time     `json:"started"`
}

// JournalEntry is one resource of a rollout: its state before the apply
// (recorded before the apply starts) and whether the apply finished.
type JournalEntry struct {
	Seq      uint64          `json:"seq"`
	Host     string          `json:"host"`
	Resource config.Resource `json:"-"`
	Snapshot targets.State   `json:"snapshot"`
	Applied  bool            `json:"applied"`
}

// Store keeps the reconciler's state: per environment its revisions and
// history, the journal of a rollout in progress, the state each resource
// had before driftless first managed it, and webhook delivery ids.
type Store interface {
	// Env returns an environment's record; ok is false when none exists.
	Env(name string) (rec EnvRecord, ok bool, err error)
	// PutEnv replaces an environment's record.
	PutEnv(rec EnvRecord) error
	// Envs returns every environment's record, sorted by name.
	Envs() ([]EnvRecord, error)

	// AddRun appends a run to the environment's history and returns its id.
	AddRun(r Run) (uint64, error)
	// History returns up to limit runs, newest first (limit <= 0: all).
	History(env string, limit int) ([]Run, error)
	// UpdateRun replaces the run of r.Environment with id r.ID, when the
	// history still holds it (ok false otherwise).
	UpdateRun(r Run) (ok bool, err error)

	// BeginJournal opens the journal of a rollout, replacing any earlier one.
	BeginJournal(j Journal) error
	// RecordSnapshots appends entries (their Applied false) before the
	// resources are applied, in one synced transaction, and returns their
	// sequence numbers in order. In the same transaction it records each
	// snapshot as its resource's first-managed state when none is recorded
	// yet.
	RecordSnapshots(env string, entries []JournalEntry) ([]uint64, error)
	// FinishEntries records, in one synced transaction, that the applies
	// of applied finished, and removes the entries of unstarted, whose
	// applies never began (an earlier one of their batch failed).
	FinishEntries(env string, applied, unstarted []uint64) error
	// OpenJournal returns the environment's journal and its entries in
	// the order they were recorded; j is nil when no rollout is open.
	OpenJournal(env string) (j *Journal, entries []JournalEntry, err error)
	// Journals lists the environments with an open journal.
	Journals() ([]string, error)
	// EndJournal closes the environment's journal.
	EndJournal(env string) error
	// CompleteJournal ends a rollout that succeeded: it closes the
	// environment's journal, replaces its record and appends the
	// rollout's run (of the same environment) to history in one
	// transaction, and returns the run's id. Either all of it is written
	// or none: no failure (a crash, a store cut off) can leave the record
	// saying one revision while the journal says another, or the journal
	// closed without the run that says what it did.
	CompleteJournal(rec EnvRecord, run Run) (id uint64, err error)

	// FirstManaged returns what a resource was before driftless first changed it.
	FirstManaged(env, host, id string) (s targets.State, ok bool, err error)
	// ForgetFirstManaged drops that record (after a prune put it back).
	ForgetFirstManaged(env, host, id string) error

	// MarkDelivery records the keys of one webhook delivery (its id, its
	// body's hash) and reports whether any was already seen within window
	// before now. Every key is recorded, even when another was seen. Keys
	// older than window are pruned, without reading those still in it.
	MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (seen bool, err error)

	// Fenced returns the store with every write of an environment's
	// worker (record, history, journal, first-managed states) bound to f:
	// such a write commits only while f holds, in the same transaction,
	// and otherwise fails with ErrFenced having written nothing. Reads and
	// MarkDelivery (replica-wide, not an environment's) are not fenced.
	Fenced(f Fence) Store

	// Close releases the store.
	Close() error
}

// Fence is what a replica's ownership of an environment looks like in the
// store: the ownership key, and its create revision when this replica
// took it (the fencing token). A later owner creates the key anew, with a
// higher revision, so a stale owner's writes fail. The zero Fence binds
// nothing (one daemon alone owns every environment).
type Fence struct {
	Key   string
	Token int64
}

// ErrFenced is the error of a write refused because its fence no longer
// holds: the replica lost the environment to another owner.
var ErrFenced = errors.New("write refused: this replica no longer owns the environment")

// ErrRefused is the error of a write the store refuses for good: trying
// it again fails the same way until an operator acts (etcd's space quota
// exceeded, a request beyond its size or operation limits, a permission
// it lacks).
var ErrRefused = errors.New("write refused by the store until an operator acts")

// storedEntry is the JSON form of a JournalEntry.
type storedEntry struct {
	JournalEntry
	Res targets.ResourceJSON `json:"resource"`
	// Sealed, for a secret resource, is the whole entry encrypted to the
	// store's own age recipient (store_seal.go).
	Sealed []byte `json:"sealed,omitempty"`
}

func encodeEntry(e JournalEntry) ([]byte, error) {
	r, err := targets.NewResourceJSON(e.Resource)
	if err != nil {
		return nil, fmt.Errorf("encode journal entry: %w", err)
	}
	return json.Marshal(storedEntry{JournalEntry: e, Res: r})
}

func decodeEntry(data []byte) (JournalEntry, error) {
	var s storedEntry
	if err := json.Unmarshal(data, &s); err != nil {
		return JournalEntry{}, fmt.Errorf("decode journal entry: %w", err)
	}
	e := s.JournalEntry
	r, err := s.Res.Resource(false)
	if err != nil {
		return JournalEntry{}, fmt.Errorf("decode journal entry: %w", err)
	}
	e.Resource = r
	return e, nil
}
