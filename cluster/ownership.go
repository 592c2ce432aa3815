package cluster

import (
	"context"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// balance brings this replica's environments to what rendezvous hashing
// over the live members gives it: it gives up those another member should
// own (or no longer declared), and takes those it should own that nobody
// holds. One that another replica still holds is left until that replica
// gives it up or its lease expires: the watch then shows the key gone.
func (c *Cluster) balance(ctx context.Context, st *session) {
	if !time.Now().Before(st.valid) {
		return
	}
	members := make([]string, 0, len(st.members))
	for m := range st.members {
		members = append(members, m)
	}
	sort.Strings(members)
	me := c.o.Replica
	for env := range st.mine {
		if !st.envs[env] || Owner(env, members) != me {
			c.release(ctx, st, env)
		}
	}
	for env := range st.envs {
		if _, ok := st.mine[env]; ok || Owner(env, members) != me {
			continue
		}
		h, held := st.holders[env]
		switch {
		case !held:
			c.acquire(ctx, st, env)
		case h.replica == me && h.lease != st.s.Lease():
			// This replica's key from before a restart or a lost lease:
			// delete it, so that the next owner (this replica, most
			// likely) creates it anew with a higher token.
			c.deleteKey(ctx, env, h.token)
		}
	}
}

// acquire creates env's ownership key on the session's lease when nobody
// holds it; the key's create revision is the new token.
func (c *Cluster) acquire(ctx context.Context, st *session, env string) {
	key := c.ownerKey(env)
	rctx, cancel := c.request(ctx)
	defer cancel()
	resp, err := c.o.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, c.o.Replica, clientv3.WithLease(st.s.Lease()))).
		Commit()
	if err != nil {
		c.o.Logger.Warn().Err(err).Str("environment", env).Msg("take ownership")
		return
	}
	if !resp.Succeeded {
		return // another replica was quicker; the watch shows it
	}
	tok := resp.Header.Revision
	st.mine[env] = tok
	st.holders[env] = holder{replica: c.o.Replica, token: tok, lease: st.s.Lease(), seen: tok}
	c.m.changes.Inc()
	c.o.Logger.Info().Str("environment", env).Int64("token", tok).Msg("took ownership")
}

// release gives env up: readers see it unowned first, then Release stops
// this replica's work on it, then the key goes (only if it is still the
// one this replica created).
func (c *Cluster) release(ctx context.Context, st *session, env string) {
	tok := st.mine[env]
	delete(st.mine, env)
	c.publish(st)
	if c.o.Release != nil {
		c.o.Release(env)
	}
	c.deleteKey(ctx, env, tok)
	c.o.Logger.Info().Str("environment", env).Int64("token", tok).Msg("gave up ownership")
}

// releaseAll stops this replica's work on every environment it owns; the
// keys go with the lease, revoked when the session ends.
func (c *Cluster) releaseAll(st *session) {
	envs := make([]string, 0, len(st.mine))
	for env := range st.mine {
		envs = append(envs, env)
	}
	clear(st.mine)
	c.publish(st)
	if c.o.Release != nil {
		for _, env := range envs {
			c.o.Release(env)
		}
	}
}

// deleteKey deletes env's ownership key if it still has create revision
// tok.
func (c *Cluster) deleteKey(ctx context.Context, env string, tok int64) {
	key := c.ownerKey(env)
	rctx, cancel := c.request(ctx)
	defer cancel()
	_, err := c.o.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", tok)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		c.o.Logger.Warn().Err(err).Str("environment", env).Msg("delete ownership key")
	}
}
