package status

import "errors"

// The errors of the reconciler's operations that its callers tell apart
// (the API answers each with its own HTTP status).
// ErrNotAwaiting is returned for a decision about a revision that is not
// the one held at the environment's gates.
var ErrNotAwaiting = errors.New("no such revision waiting")

// ErrUnknownEnvironment is returned for an environment the reconciler has
// never seen in a revision.
var ErrUnknownEnvironment = errors.New("unknown environment")

// ErrWindowClosed is returned by a sync that ran while a deploy window
// holds the environment's revision back.
var ErrWindowClosed = errors.New("deploy window closed")

// ErrRemovedEnvironment is returned for a sync or rollback of a removed
// environment.
var ErrRemovedEnvironment = errors.New("environment removed from its source")

// ErrNotOwner is returned, in a cluster, for a request about an
// environment another replica owns.
var ErrNotOwner = errors.New("another replica owns the environment")
