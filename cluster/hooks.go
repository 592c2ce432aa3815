package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/sources"
)

// hookEvent is a webhook event one replica received, as the others read
// it under the key hooks/event.
type hookEvent struct {
	From  string        `json:"from"`
	Event sources.Event `json:"event"`
	// Comment is the event's pull request comment, which sources.Event
	// leaves out of its JSON: the owner must read an /approve relayed by
	// another replica.
	Comment string `json:"comment,omitempty"`
}

// HookRelay is the webhook target (webhook.Target) that hands every event
// this replica's webhook handler accepted (signature checked, not a
// replay) to the other replicas: it writes the event under the key
// hooks/event, which every replica watches (RunHooks) and offers to its own
// sources and approvals. The owner of an environment thus fetches a pushed
// commit at the same time as the replica the sender reached.
type HookRelay struct{ c *Cluster }

// HookRelay returns the relay's webhook target.
func (c *Cluster) HookRelay() *HookRelay { return &HookRelay{c: c} }

// Notify writes ev for the other replicas. It takes nothing itself: the
// replica's own targets answer for it.
func (h *HookRelay) Notify(ev sources.Event) bool {
	body, err := json.Marshal(hookEvent{From: h.c.o.Replica, Event: ev, Comment: ev.Comment})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.c.ttl/3)
	defer cancel()
	key := h.c.o.Prefix + "hooks/event"
	if _, err := h.c.o.Client.Put(ctx, key, string(body)); err != nil {
		h.c.o.Logger.Warn().Err(err).Str("repository", ev.Repository).Msg("cannot relay a webhook event to the other replicas; they see the change at their next poll")
		return false
	}
	// The watchers read the put from the key's history: the key itself
	// is not kept, so that an event (a comment's text) stays in etcd only
	// until the next compaction.
	if _, err := h.c.o.Client.Delete(ctx, key); err != nil {
		h.c.o.Logger.Warn().Err(err).Msg("cannot delete the relayed webhook event; the next one replaces it")
	}
	return false
}

// PublishRevision records commit as the newest revision of source, under
// hooks/revisions/SOURCE, unless it is there already: a replica whose poll
// found it first tells the others, which fetch it at once (Relayed.Want)
// instead of at their next poll.
func (c *Cluster) PublishRevision(source, commit string) {
	key := c.o.Prefix + "hooks/revisions/" + source
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl/3)
	defer cancel()
	if _, err := c.o.Client.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", commit)).
		Else(clientv3.OpPut(key, commit)).Commit(); err != nil {
		c.o.Logger.Warn().Err(err).Str("source", source).Msg("cannot tell the other replicas of a new revision; they see it at their next poll")
	}
}

// Relayed receives what other replicas relay: the webhook events they
// received (for this replica's webhook targets) and the newest revision of
// each source (for the source, to fetch it now).
type Relayed struct {
	Event func(sources.Event)
	Want  func(source, commit string)
}

// RunHooks hands what other replicas relay to to until ctx ends.
func (c *Cluster) RunHooks(ctx context.Context, to Relayed) {
	// rev is the newest revision of the key seen: a new watch goes on
	// from there, so no event is lost while the watch is set up again.
	var rev int64
	for ctx.Err() == nil {
		err := c.runHooks(ctx, to, &rev)
		if ctx.Err() != nil {
			return
		}
		c.o.Logger.Warn().Err(err).Msg("watching relayed webhook events")
		select {
		case <-ctx.Done():
		case <-time.After(c.ttl / 10):
		}
	}
}

func (c *Cluster) runHooks(ctx context.Context, to Relayed, rev *int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithFilterDelete()}
	if *rev > 0 {
		opts = append(opts, clientv3.WithRev(*rev+1))
	}
	events := c.o.Client.Watch(wctx, c.o.Prefix+"hooks/", opts...)
	for {
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-events:
			if !ok || wr.Err() != nil || wr.Canceled {
				if wr.CompactRevision > 0 {
					*rev = 0 // what was missed is gone; the sources poll
				}
				return fmt.Errorf("watch relayed webhook events: %w", wr.Err())
			}
			for _, ev := range wr.Events {
				*rev = ev.Kv.ModRevision
				if ev.Type != mvccpb.PUT {
					continue
				}
				if src, ok := strings.CutPrefix(string(ev.Kv.Key), c.o.Prefix+"hooks/revisions/"); ok {
					to.Want(src, string(ev.Kv.Value))
					continue
				}
				var he hookEvent
				if err := json.Unmarshal(ev.Kv.Value, &he); err != nil {
					c.o.Logger.Warn().Err(err).Msg("unreadable relayed webhook event")
					continue
				}
				if he.From == c.o.Replica {
					continue
				}
				he.Event.Comment = he.Comment
				c.o.Logger.Debug().Str("from", he.From).Str("repository", he.Event.Repository).Str("kind", he.Event.Kind).Msg("webhook event relayed by another replica")
				to.Event(he.Event)
			}
		}
	}
}
