package sources

// retention decides which checkouts (or snapshots) stay on disk: the current
// one, the previous one, and the last two sent to the reader. A reader with
// a buffered channel may still be working on the revision before the one
// waiting in its buffer, while newer ones were fetched meanwhile; deleting
// either under its feet would make it read a vanishing tree.
type retention struct {
	current  string
	previous string
	sent     []string
}

// advance makes id the current one.
func (r *retention) advance(id string) {
	if id != r.current {
		r.previous, r.current = r.current, id
	}
}

// markSent records that id was handed to the reader.
func (r *retention) markSent(id string) {
	r.sent = append(r.sent, id)
	if len(r.sent) > 2 {
		r.sent = r.sent[len(r.sent)-2:]
	}
}

// keeps reports whether the checkout named id must stay.
func (r *retention) keeps(id string) bool {
	if id == r.current || id == r.previous {
		return true
	}
	for _, s := range r.sent {
		if s == id {
			return true
		}
	}
	return false
}
