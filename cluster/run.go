package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// errLeaseLost ends a session whose lease can no longer be trusted.
var errLeaseLost = errors.New("the cluster lease was lost")

// holder is an ownership key as etcd holds it.
type holder struct {
	replica string
	token   int64 // the key's create revision
	lease   clientv3.LeaseID
	seen    int64 // the revision of the newest event applied
}

// session is the state of one lease: the goroutine running Run owns it.
type session struct {
	me      string
	s       *concurrency.Session
	members map[string]bool
	holders map[string]holder
	envs    map[string]bool
	mine    map[string]int64
}

// Run keeps this replica a member and its share of the environments owned
// until ctx ends. When the lease is lost (etcd unreachable past the lease,
// or the process paused past it) every environment is given up at once
// and a new session starts as soon as etcd answers. On return the lease is
// revoked, so the other replicas take over at once.
func (c *Cluster) Run(ctx context.Context) error {
	envs := map[string]bool{}
	wait := c.ttl / 10
	for {
		err := c.session(ctx, envs)
		c.lost()
		if ctx.Err() != nil {
			return nil
		}
		c.o.Logger.Warn().Err(err).Msg("cluster session ended")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// lost forgets every environment: no lease backs them any more.
func (c *Cluster) lost() {
	c.mu.Lock()
	changed := len(c.view.mine) > 0
	c.view.mine = map[string]int64{}
	c.valid.Store(0)
	c.mu.Unlock()
	c.m.owned.Set(0)
	c.m.etcdUp.Set(0)
	c.m.unowned.Set(0)
	if changed && c.o.Changed != nil {
		c.o.Changed()
	}
}

// request bounds one request to etcd: a third of the lease, so that a
// hung request cannot outlive the ownership it acts for.
func (c *Cluster) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.ttl/3)
}

// session runs one lease from its grant until it is lost or ctx ends.
func (c *Cluster) session(ctx context.Context, envs map[string]bool) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	s, err := concurrency.NewSession(c.o.Client, concurrency.WithTTL(int(c.ttl/time.Second)), concurrency.WithContext(sctx))
	if err != nil {
		return fmt.Errorf("open a cluster session: %w", err)
	}
	defer func() {
		// Revoking the lease deletes this replica's member and ownership
		// keys at once; a replica that cannot reach etcd lets them expire.
		rctx, rcancel := context.WithTimeout(context.Background(), c.ttl/3)
		_, _ = c.o.Client.Revoke(rctx, s.Lease())
		rcancel()
		s.Orphan()
	}()
	// The lease is trusted until the TTL (less the margin) after the
	// newest instant etcd surely renewed it: the grant came after start,
	// and each renewal of renew after its request was sent.
	// renew moves the validity on itself, whatever the loop below is
	// doing (a Release waiting for a worker): the lease is renewed by
	// renew, not by the loop. It has stopped when the session returns.
	c.valid.Store(start.Add(c.ttl - c.margin).UnixNano())
	renewed := make(chan time.Time, 1)
	renewing := make(chan struct{})
	go func() {
		defer close(renewing)
		c.renew(sctx, s.Lease(), renewed)
	}()
	defer func() { cancel(); <-renewing }()
	st := &session{me: c.o.Replica, s: s, members: map[string]bool{}, holders: map[string]holder{}, envs: envs, mine: map[string]int64{}}
	rctx, rcancel := c.request(sctx)
	_, err = c.o.Client.Put(rctx, c.memberKey(c.o.Replica), "", clientv3.WithLease(s.Lease()))
	rcancel()
	if err != nil {
		return fmt.Errorf("register as a cluster member: %w", err)
	}
	rev, err := c.load(sctx, st)
	if err != nil {
		return err
	}
	watchCtx := clientv3.WithRequireLeader(sctx)
	members := c.o.Client.Watch(watchCtx, c.o.Prefix+"members/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	owners := c.o.Client.Watch(watchCtx, c.o.Prefix+"owners/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(c.ttl / 10)
	defer tick.Stop()
	c.publish(st)
	for {
		c.balance(sctx, st)
		c.publish(st)
		select {
		case <-ctx.Done():
			c.releaseAll(st)
			return ctx.Err()
		case <-s.Done():
			return errLeaseLost
		case _, ok := <-renewed:
			if !ok {
				return errLeaseLost
			}
		case wr := <-members:
			if err := wr.Err(); err != nil || wr.Canceled {
				return fmt.Errorf("watch cluster members: %w", err)
			}
			for _, ev := range wr.Events {
				st.member(c.o.Prefix, ev)
			}
		case wr := <-owners:
			if err := wr.Err(); err != nil || wr.Canceled {
				return fmt.Errorf("watch environment owners: %w", err)
			}
			for _, ev := range wr.Events {
				st.owner(c.o.Prefix, ev)
			}
		case list := <-c.envsCh:
			clear(st.envs)
			for _, e := range list {
				st.envs[e] = true
			}
		case <-tick.C:
		}
		if !c.leaseValid() {
			return errLeaseLost
		}
	}
}

// renew renews the lease every sixth of the TTL, each time with a request
// of its own, and hands the session the instant the request of each
// renewal was sent (etcd renewed the lease after it), keeping only the
// newest when the session has not taken the previous one yet. It closes
// renewed when etcd says the lease is gone, and returns when ctx ends.
// The session's own keep-alive stream cannot say when its requests left,
// only when their answers arrived, which would trust the lease a whole
// keep-alive interval less.
func (c *Cluster) renew(ctx context.Context, lease clientv3.LeaseID, renewed chan time.Time) {
	tick := time.NewTicker(c.ttl / 6)
	defer tick.Stop()
	for {
		sent := time.Now()
		rctx, cancel := c.request(ctx)
		_, err := c.o.Client.KeepAliveOnce(rctx, lease)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			close(renewed)
			return
		case err == nil:
			c.valid.Store(sent.Add(c.ttl - c.margin).UnixNano())
			select {
			case <-renewed:
			default:
			}
			renewed <- sent
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// load reads the members and owners, and returns the revision read at.
func (c *Cluster) load(ctx context.Context, st *session) (int64, error) {
	rctx, cancel := c.request(ctx)
	defer cancel()
	resp, err := c.o.Client.Txn(rctx).Then(
		clientv3.OpGet(c.o.Prefix+"members/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(c.o.Prefix+"owners/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("read the cluster's members and owners: %w", err)
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		st.member(c.o.Prefix, &clientv3.Event{Type: mvccpb.PUT, Kv: kv})
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		st.owner(c.o.Prefix, &clientv3.Event{Type: mvccpb.PUT, Kv: kv})
	}
	return resp.Header.Revision, nil
}

func (st *session) member(prefix string, ev *clientv3.Event) {
	name := strings.TrimPrefix(string(ev.Kv.Key), prefix+"members/")
	if ev.Type == mvccpb.DELETE {
		delete(st.members, name)
	} else {
		st.members[name] = true
	}
}

// owner applies an event of the ownership keys. The watch may deliver an
// event after this replica's own later transaction on the same key (it
// gave an environment up and took it again): an event older than what is
// known of the key changes nothing.
func (st *session) owner(prefix string, ev *clientv3.Event) {
	env := strings.TrimPrefix(string(ev.Kv.Key), prefix+"owners/")
	if h, ok := st.holders[env]; ok && ev.Kv.ModRevision <= h.seen {
		return
	}
	if ev.Type == mvccpb.DELETE {
		if tok, ok := st.mine[env]; ok && tok > ev.Kv.ModRevision {
			return
		}
		delete(st.holders, env)
		// Whoever deleted it (a lease that expired, an operator), this
		// replica's token for it is gone.
		delete(st.mine, env)
		return
	}
	if tok, ok := st.mine[env]; ok && tok > ev.Kv.ModRevision {
		return
	}
	if string(ev.Kv.Value) != st.me {
		// Another replica wrote the key: whatever this replica thought,
		// it does not own the environment.
		delete(st.mine, env)
	}
	st.holders[env] = holder{replica: string(ev.Kv.Value), token: ev.Kv.CreateRevision, lease: clientv3.LeaseID(ev.Kv.Lease), seen: ev.Kv.ModRevision}
}

// publish hands the session's state to the readers and the metrics.
func (c *Cluster) publish(st *session) {
	members := make([]string, 0, len(st.members))
	for m := range st.members {
		members = append(members, m)
	}
	sort.Strings(members)
	holders := make(map[string]string, len(st.holders))
	for env, h := range st.holders {
		holders[env] = h.replica
	}
	unowned := 0
	for env := range st.envs {
		if _, ok := st.holders[env]; !ok {
			unowned++
		}
	}
	mine := make(map[string]int64, len(st.mine))
	for env, tok := range st.mine {
		mine[env] = tok
	}
	c.mu.Lock()
	changed := !sameKeys(c.view.mine, mine)
	c.view = view{members: members, holders: holders, mine: mine}
	c.mu.Unlock()
	c.m.members.Set(float64(len(members)))
	c.m.owned.Set(float64(len(mine)))
	c.m.etcdUp.Set(1)
	c.m.unowned.Set(float64(unowned))
	if changed {
		select {
		case c.gained <- struct{}{}:
		default:
		}
	}
	if changed && c.o.Changed != nil {
		c.o.Changed()
	}
}

func sameKeys(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
