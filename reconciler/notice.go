package reconciler

import "time"

// The kinds of state a notice is about. Each kind of an environment
// remembers what it last told: a pass that finds the same state again
// sends nothing, until the reminder interval has passed.
const (
	noticeDrift     = "drift"
	noticeCorrected = "corrected"
	noticeFailure   = "failure"
	noticeBlocked   = "blocked"
	noticeRefused   = "refused"
	noticePromotion = "promotion"
)

// notice is what was last told about one kind of state, and when.
type notice struct {
	key string
	at  time.Time
}

// noticeDue reports whether a notice of kind about the state key should go
// out: the state is new (key differs from the one last told) or the
// reminder interval has passed since it was last told. It records the
// notice as told. An empty key clears the kind (the state ended); it
// reports whether there was one to clear.
func (r *Reconciler) noticeDue(st *envState, kind, key string) bool {
	prev, had := st.notices[kind]
	if key == "" {
		delete(st.notices, kind)
		return had
	}
	now := r.now()
	if had && prev.key == key && now.Sub(prev.at) < r.opts.NotifyReminder {
		return false
	}
	st.notices[kind] = notice{key: key, at: now}
	return true
}
