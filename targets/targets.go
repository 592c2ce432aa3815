// Package targets reaches hosts (the Transport seam: local and ssh) and owns
// the resource drivers, one file per kind, each able to observe, diff,
// apply and restore. It imports only config.
package targets

import (
	"context"
	"io/fs"

	"github.com/driftless/driftless/config"
)

// Result is what a script run on a host produced.
type Result struct {
	Stdout []byte
	Stderr []byte
	Exit   int
}

// Transport is how bytes and commands reach one host.
type Transport interface {
	// Run runs a POSIX shell script on the host, feeding it stdin. A script
	// that ran and exited non-zero is not an error: its Exit says so. An
	// error means the host could not be reached or the context ended.
	Run(ctx context.Context, script string, stdin []byte) (Result, error)
	// WriteFile atomically replaces path with data: a temporary file beside
	// it, written, fsynced, then renamed over path. A failure at any point
	// leaves path as it was. path is a host path; Root is applied inside.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// WriteFiles writes files in order, each as WriteFile does and given
	// its owner and group before it is renamed into place, in one round
	// trip where the transport allows it. It stops at the first failure
	// and returns how many files are in place. Files after the failed one
	// are left as they were, except when the error leaves the outcome
	// unknown (the host was cut off in the middle): callers must then
	// treat every file of the call as possibly written.
	WriteFiles(ctx context.Context, files []FileWrite) (int, error)
	// Root is the folder every managed absolute path is placed under ("" on
	// real hosts; a sandbox folder for the local transport in demos and tests).
	Root() string
	// Close releases the connection.
	Close() error
}

// FileWrite is one file of a WriteFiles call.
type FileWrite struct {
	// Path is a host path; the transport's Root is applied inside.
	Path string
	Data []byte
	Mode fs.FileMode
	// Owner and Group, names or numeric ids, are given to the file when
	// set; otherwise a replaced file keeps its owner and group where the
	// transport can keep them.
	Owner, Group string
}

// ChownArg is the argument of chown for the write's owner and group, ""
// when neither is set.
func (w FileWrite) ChownArg() string { return chownArg(w.Owner, w.Group) }

// State is the observed state of one resource, also the snapshot that
// restore puts back. It is serialised into the state store's journal.
type State struct {
	// Present is false when the resource does not exist on the host.
	Present bool `json:"present"`
	// Fields are small named facts (mode, owner, version, target, active...).
	Fields map[string]string `json:"fields,omitempty"`
	// Content is a body (a file's bytes, a unit file, an nft ruleset).
	Content []byte `json:"content,omitempty"`
}

// Action is what a plan does to a resource.
type Action string

// The actions of a plan.
const (
	NoChange Action = "none"
	Create   Action = "create"
	Update   Action = "update"
	Delete   Action = "delete"
)

// Change is the difference between a declared resource and its live state.
type Change struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Action Action `json:"action"`
	// Diff is human-readable: a unified diff for file contents, "field: old -> new" lines otherwise.
	Diff string `json:"diff,omitempty"`
	// Before is the observed state, the snapshot restore puts back.
	Before State `json:"before"`
}

// Driver is one resource kind. The same Diff drives plan, drift detection
// and apply, so the three can never disagree.
type Driver interface {
	// Kind is the resource kind this driver manages ("file").
	Kind() string
	// NewSpec and Validate make the driver its kind's row of the table
	// config's loader takes (Kinds): its spec, and its one validation,
	// which the driver's own methods run too.
	config.ResourceKind
	// Parse turns the kind's observation (the native answer, see Query)
	// into a State.
	Parse(r config.Resource, out []byte) (State, error)
	// Diff compares the declared resource with the observed state.
	Diff(r config.Resource, observed State) Change
	// Apply makes the host match r. observed is the state Diff was given.
	Apply(ctx context.Context, t Transport, r config.Resource, observed State) error
	// Restore puts back a state captured before an apply.
	Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error
}

// Writer is a driver whose apply is, for most changes, one file write (a
// file, an env file). The reconciler joins the consecutive such changes of
// a host into one WriteFiles call, so that they take one round trip.
type Writer interface {
	// Write returns the write that applies r given the observed state; ok
	// is false when the apply is something else (a removal), or when it
	// must fail, which Apply then does with its own error.
	Write(r config.Resource, observed State) (w FileWrite, ok bool)
	// RestoreWrite returns the write that puts back snapshot, the state r
	// had before it was applied; ok is false when the restore is something
	// else (a removal), or when it must fail, which Restore then does with
	// its own error. A rollback joins a host's consecutive such restores
	// into one WriteFiles call, as applies are.
	RestoreWrite(r config.Resource, snapshot State) (w FileWrite, ok bool)
}

// Refresher is a driver that reacts to a notify (a service restarts or reloads).
type Refresher interface {
	Refresh(ctx context.Context, t Transport, r config.Resource) error
}

// Redialer is a Transport that can open a fresh, independent connection to
// the same host. After a network change, driftless confirms the host is
// still reachable through a new connection before it cancels the host's
// armed revert.
type Redialer interface {
	Redial(ctx context.Context) (Transport, error)
}
