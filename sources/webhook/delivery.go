package webhook

import (
	"sync"
	"time"

	"github.com/driftless/driftless/sources"
)

// Target receives accepted events. The Git source implements it: Notify
// returns true when the event concerns a repository and ref it follows and
// a fetch was scheduled. Notify must not block: the handler calls it while
// the sender waits for its answer, so the fetch itself runs elsewhere.
type Target interface {
	Notify(ev sources.Event) bool
}

// DeliveryStore remembers deliveries for replay protection. MarkDelivery
// records every key of one delivery of provider at now, in one step, and
// reports whether any of them was already recorded within window before
// now. It returns only once the keys are durable, since the sender is
// answered next. The reconciler's bbolt store implements it so that replay
// protection survives a restart.
type DeliveryStore interface {
	MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (seen bool, err error)
}

// MemoryDeliveries is a DeliveryStore held in memory: for tests, and for a
// daemon run without a state store. It forgets everything on restart. The
// zero value is ready to use.
type MemoryDeliveries struct {
	mu        sync.Mutex
	seen      map[deliveryKey]time.Time
	pruneSize int
}

var _ DeliveryStore = (*MemoryDeliveries)(nil)

// deliveryKey names one delivery of one provider.
type deliveryKey struct{ provider, id string }

// MarkDelivery implements DeliveryStore. Expired ids are dropped whenever
// the map has doubled since the last sweep, so memory stays proportional to
// the deliveries of one window while each call stays cheap on average.
func (m *MemoryDeliveries) MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[deliveryKey]time.Time)
	}
	seen := false
	for _, id := range keys {
		k := deliveryKey{provider, id}
		if at, ok := m.seen[k]; ok && now.Sub(at) < window {
			seen = true
			continue
		}
		m.seen[k] = now
	}
	if len(m.seen) > 2*m.pruneSize+64 {
		for key, at := range m.seen {
			if now.Sub(at) >= window {
				delete(m.seen, key)
			}
		}
		m.pruneSize = len(m.seen)
	}
	return seen, nil
}

// Len returns how many deliveries are remembered.
func (m *MemoryDeliveries) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
