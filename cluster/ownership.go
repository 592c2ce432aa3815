package cluster

import (
	"context"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// batch is how many environments one transaction takes or gives up,
// each in a nested transaction with its own comparison: a replica taking a
// thousand environments sends a few requests, not a thousand, and renews
// its lease meanwhile.
const batch = 64

// balance brings this replica's environments to what rendezvous hashing
// over the live members gives it: it gives up those another member should
// own (or no longer declared), and takes those it should own that nobody
// holds. One that another replica still holds is left until that replica
// gives it up or its lease expires: the watch then shows the key gone.
func (c *Cluster) balance(ctx context.Context, st *session) {
	if !c.leaseValid() {
		return
	}
	members := make([]string, 0, len(st.members))
	for m := range st.members {
		members = append(members, m)
	}
	sort.Strings(members)
	me := c.o.Replica
	give := map[string]int64{}
	for env, tok := range st.mine {
		if !st.envs[env] || Owner(env, members) != me {
			give[env] = tok
		}
	}
	if len(give) > 0 {
		c.release(ctx, st, give)
	}
	var take []string
	stale := map[string]int64{}
	for env := range st.envs {
		if _, ok := st.mine[env]; ok || Owner(env, members) != me {
			continue
		}
		h, held := st.holders[env]
		switch {
		case !held:
			take = append(take, env)
		case h.replica == me && h.lease != st.s.Lease():
			// This replica's key from before a restart or a lost lease:
			// delete it, so that the next owner (this replica, most
			// likely) creates it anew with a higher token.
			stale[env] = h.token
		}
	}
	sort.Strings(take)
	for len(take) > 0 {
		n := min(len(take), batch)
		c.acquire(ctx, st, take[:n])
		take = take[n:]
	}
	c.deleteKeys(ctx, stale)
}

// acquire creates the ownership keys of envs on the session's lease,
// each only when nobody holds it; a key's create revision is its token.
func (c *Cluster) acquire(ctx context.Context, st *session, envs []string) {
	ops := make([]clientv3.Op, len(envs))
	for i, env := range envs {
		key := c.ownerKey(env)
		ops[i] = clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key, c.o.Replica, clientv3.WithLease(st.s.Lease()))}, nil)
	}
	rctx, cancel := c.request(ctx)
	defer cancel()
	resp, err := c.o.Client.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		c.o.Logger.Warn().Err(err).Int("environments", len(envs)).Msg("take ownership")
		return
	}
	tok := resp.Header.Revision
	for i, env := range envs {
		if !resp.Responses[i].GetResponseTxn().GetSucceeded() {
			continue // another replica was quicker; the watch shows it
		}
		st.mine[env] = tok
		st.holders[env] = holder{replica: c.o.Replica, token: tok, lease: st.s.Lease(), seen: tok}
		c.m.changes.Inc()
		c.o.Logger.Info().Str("environment", env).Int64("token", tok).Msg("took ownership")
	}
}

// release gives envs up: readers see them unowned first, then Release
// stops this replica's work on each, then the keys go (each only if it is
// still the one this replica created).
func (c *Cluster) release(ctx context.Context, st *session, envs map[string]int64) {
	for env := range envs {
		delete(st.mine, env)
	}
	c.publish(st)
	if c.o.Release != nil {
		for env := range envs {
			c.o.Release(env)
		}
	}
	c.deleteKeys(ctx, envs)
	for env, tok := range envs {
		c.o.Logger.Info().Str("environment", env).Int64("token", tok).Msg("gave up ownership")
	}
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

// deleteKeys deletes the ownership key of each env that still has the
// create revision given, in batches.
func (c *Cluster) deleteKeys(ctx context.Context, envs map[string]int64) {
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		rctx, cancel := c.request(ctx)
		defer cancel()
		if _, err := c.o.Client.Txn(rctx).Then(ops...).Commit(); err != nil {
			c.o.Logger.Warn().Err(err).Int("environments", len(ops)).Msg("delete ownership keys")
		}
		ops = ops[:0]
	}
	for env, tok := range envs {
		key := c.ownerKey(env)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", tok)},
			[]clientv3.Op{clientv3.OpDelete(key)}, nil))
		if len(ops) == batch {
			flush()
		}
	}
	flush()
}
