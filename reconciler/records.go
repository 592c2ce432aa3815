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
