package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the write transactions of concurrent callers together:
// one bbolt transaction, so one disk sync, for every call queued while the
// previous transaction was being written. A lone caller commits at once
// (no timer, unlike bbolt's own Batch, whose delay a single webhook would
// wait out); under load, the calls that arrive during one sync share the
// next. Every call returns only once its own writes are on disk.
//
// A call's function may run more than once: when one function of a group
// fails, the group's transaction is rolled back and every function runs
// again in a transaction of its own, so that one failure fails only its
// caller. Functions must therefore set their results afresh on each run.
type groupCommit struct {
	db *bolt.DB

	mu    sync.Mutex
	queue []*groupCall
	// leading is true while some caller is committing a group.
	leading bool
}

type groupCall struct {
	fn func(*bolt.Tx) error
	// done receives the call's result, or the turn to lead the next group.
	done chan groupResult
}

type groupResult struct {
	err  error
	lead bool
}

// update runs fn in a synced write transaction shared with the calls
// queued beside it, and returns fn's error or the commit's.
func (g *groupCommit) update(fn func(*bolt.Tx) error) error {
	c := &groupCall{fn: fn, done: make(chan groupResult, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.leading {
		g.mu.Unlock()
		r := <-c.done
		if !r.lead {
			return r.err
		}
		// Handed the lead: this call is first in the queue, still to run.
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	g.mu.Lock()
	group := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(group)
	// The lead passes to the oldest waiting call, so that no caller keeps
	// committing other callers' groups while its own answer waits.
	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].done <- groupResult{lead: true}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return (<-c.done).err
}

// commit runs group in one transaction, or, when that fails, each call in
// its own.
func (g *groupCommit) commit(group []*groupCall) {
	if len(group) > 1 {
		err := g.db.Update(func(tx *bolt.Tx) error {
			for _, c := range group {
				if err := c.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, c := range group {
				c.done <- groupResult{}
			}
			return
		}
	}
	for _, c := range group {
		c.done <- groupResult{err: g.db.Update(c.fn)}
	}
}
