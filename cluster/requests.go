package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// Operator is the API's reconciler on a replica (api.Operator): reads
// name each environment's owner, and a sync, rollback or decision about
// an environment another replica owns is written to etcd, where its owner
// (watching, ServeRequests) carries it out and writes the answer back.
// The caller waits for that answer, so it gets the owner's result.
type Operator struct {
	c     *Cluster
	local api.Operator
	// opTimeout bounds an operation carried out for another replica.
	opTimeout time.Duration
}

// Operator wraps local, this replica's reconciler.
func (c *Cluster) Operator(local api.Operator) *Operator {
	return &Operator{c: c, local: local, opTimeout: 10 * time.Minute}
}

// relayed is a request written under requests/ENV/ID.
type relayed struct {
	Op       string         `json:"op"` // sync, force, rollback, decide
	To       string         `json:"to,omitempty"`
	From     string         `json:"from"`
	Decision store.Decision `json:"decision,omitzero"`
}

// answer is the owner's reply, written under replies/ID.
type answer struct {
	By       string         `json:"by"`
	Error    string         `json:"error,omitempty"`
	Kind     string         `json:"kind,omitempty"`
	Decision store.Decision `json:"decision,omitzero"`
}

// errorKinds are the errors a caller tells apart (the API answers each
// with its own status), by the name they travel under.
var errorKinds = map[string]error{
	"unknown":       status.ErrUnknownEnvironment,
	"removed":       status.ErrRemovedEnvironment,
	"window_closed": status.ErrWindowClosed,
	"not_awaiting":  status.ErrNotAwaiting,
	"not_owner":     status.ErrNotOwner,
}

// remoteError is an error the owner answered: its message, and the error
// it is (errors.Is) when it is one of errorKinds.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func encodeError(err error) (msg, kind string) {
	if err == nil {
		return "", ""
	}
	for k, target := range errorKinds {
		if errors.Is(err, target) {
			return err.Error(), k
		}
	}
	return err.Error(), ""
}

func decodeError(a answer) error {
	if a.Error == "" {
		return nil
	}
	return &remoteError{msg: a.Error, kind: errorKinds[a.Kind]}
}

// Environments lists every environment with its owner.
func (o *Operator) Environments() []status.EnvStatus {
	envs := o.local.Environments()
	owners := o.c.Owners()
	for i := range envs {
		envs[i].Replica = owners[envs[i].Name]
	}
	return envs
}

// Environment is one environment with its owner.
func (o *Operator) Environment(name string) (status.EnvStatus, bool) {
	st, ok := o.local.Environment(name)
	if ok {
		st.Replica = o.c.Owners()[name]
	}
	return st, ok
}

// History reads the shared store.
func (o *Operator) History(name string, limit int) ([]store.Run, error) {
	return o.local.History(name, limit)
}

// Sync syncs the environment on its owner.
func (o *Operator) Sync(ctx context.Context, name string) error {
	_, err := o.do(ctx, name, relayed{Op: "sync"})
	return err
}

// ForceSync force-syncs the environment on its owner.
func (o *Operator) ForceSync(ctx context.Context, name string) error {
	_, err := o.do(ctx, name, relayed{Op: "force"})
	return err
}

// Rollback rolls the environment back on its owner.
func (o *Operator) Rollback(ctx context.Context, name, to string) error {
	_, err := o.do(ctx, name, relayed{Op: "rollback", To: to})
	return err
}

// Decide records a decision on the environment's owner.
func (o *Operator) Decide(ctx context.Context, name, rev string, d store.Decision) (store.Decision, error) {
	return o.do(ctx, name, relayed{Op: "decide", To: rev, Decision: d})
}

// run carries a request out on this replica's reconciler.
func (o *Operator) run(ctx context.Context, name string, req relayed) (store.Decision, error) {
	switch req.Op {
	case "sync":
		return store.Decision{}, o.local.Sync(ctx, name)
	case "force":
		return store.Decision{}, o.local.ForceSync(ctx, name)
	case "rollback":
		return store.Decision{}, o.local.Rollback(ctx, name, req.To)
	case "decide":
		return o.local.Decide(ctx, name, req.To, req.Decision)
	}
	return store.Decision{}, fmt.Errorf("unknown relayed operation %q", req.Op)
}

// do carries req out here when this replica owns the environment, else
// through etcd on its owner; a request that reaches a replica that no
// longer owns the environment is sent again, until ctx ends.
func (o *Operator) do(ctx context.Context, name string, req relayed) (store.Decision, error) {
	for {
		if _, ok := o.c.Owned(name); ok {
			d, err := o.run(ctx, name, req)
			if !errors.Is(err, status.ErrNotOwner) {
				return d, err
			}
		}
		d, err := o.relay(ctx, name, req)
		if !errors.Is(err, status.ErrNotOwner) || ctx.Err() != nil {
			return d, err
		}
		select {
		case <-ctx.Done():
			return store.Decision{}, ctx.Err()
		case <-time.After(o.c.ttl / 10):
		}
	}
}

// relay writes req under requests/NAME/ID on a lease of its own, kept
// alive while it waits, and waits for the answer under replies/ID. The
// lease's revocation removes both.
func (o *Operator) relay(ctx context.Context, name string, req relayed) (store.Decision, error) {
	cli, p := o.c.o.Client, o.c.o.Prefix
	var idb [12]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return store.Decision{}, err
	}
	id := hex.EncodeToString(idb[:])
	req.From = o.c.o.Replica
	body, err := json.Marshal(req)
	if err != nil {
		return store.Decision{}, err
	}
	rctx, cancel := o.c.request(ctx)
	lease, err := cli.Grant(rctx, int64(o.c.ttl/time.Second))
	cancel()
	if err != nil {
		return store.Decision{}, fmt.Errorf("relay %s of %s to its owner: %w", req.Op, name, err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		rctx, cancel := context.WithTimeout(context.Background(), o.c.ttl/3)
		_, _ = cli.Revoke(rctx, lease.ID)
		cancel()
	}()
	alive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return store.Decision{}, fmt.Errorf("relay %s of %s to its owner: %w", req.Op, name, err)
	}
	go func() {
		for range alive { // the answers only say the lease was renewed
		}
	}()
	rctx, cancel = o.c.request(ctx)
	put, err := cli.Put(rctx, p+"requests/"+name+"/"+id, string(body), clientv3.WithLease(lease.ID))
	cancel()
	if err != nil {
		return store.Decision{}, fmt.Errorf("relay %s of %s to its owner: %w", req.Op, name, err)
	}
	o.c.o.Logger.Debug().Str("environment", name).Str("op", req.Op).Str("request", id).Msg("request relayed to the environment's owner")
	replies := cli.Watch(clientv3.WithRequireLeader(kctx), p+"replies/"+id, clientv3.WithRev(put.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return store.Decision{}, fmt.Errorf("%s of %s: no answer from its owner: %w", req.Op, name, ctx.Err())
		case wr, ok := <-replies:
			if !ok || wr.Err() != nil {
				if ctx.Err() != nil {
					return store.Decision{}, fmt.Errorf("%s of %s: no answer from its owner: %w", req.Op, name, ctx.Err())
				}
				return store.Decision{}, fmt.Errorf("%s of %s: watch for its owner's answer: %w", req.Op, name, wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.PUT {
					continue
				}
				var a answer
				if err := json.Unmarshal(ev.Kv.Value, &a); err != nil {
					return store.Decision{}, fmt.Errorf("%s of %s: unreadable answer: %w", req.Op, name, err)
				}
				o.c.o.Logger.Debug().Str("environment", name).Str("op", req.Op).Str("request", id).Str("by", a.By).Msg("answer of the environment's owner")
				return a.Decision, decodeError(a)
			}
		}
	}
}

// ServeRequests carries out, until ctx ends, the requests other replicas
// write for the environments this replica owns: each is taken by deleting
// its key (only one replica can), carried out on the local reconciler
// under ctx (not the requester's, as the API does), and answered under
// replies/ID on the requester's lease. Requests waiting when this replica
// gains an environment are taken then.
func (o *Operator) ServeRequests(ctx context.Context) {
	for ctx.Err() == nil {
		err := o.serveRequests(ctx)
		if ctx.Err() != nil {
			return
		}
		o.c.o.Logger.Warn().Err(err).Msg("serving relayed requests")
		select {
		case <-ctx.Done():
		case <-time.After(o.c.ttl / 10):
		}
	}
}

func (o *Operator) serveRequests(ctx context.Context) error {
	cli, prefix := o.c.o.Client, o.c.o.Prefix+"requests/"
	scan := func() (int64, error) {
		rctx, cancel := o.c.request(ctx)
		defer cancel()
		resp, err := cli.Get(rctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return 0, fmt.Errorf("read relayed requests: %w", err)
		}
		for _, kv := range resp.Kvs {
			o.take(ctx, kv)
		}
		return resp.Header.Revision, nil
	}
	rev, err := scan()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	events := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.c.gained:
			if _, err := scan(); err != nil {
				return err
			}
		case wr, ok := <-events:
			if !ok || wr.Err() != nil || wr.Canceled {
				return fmt.Errorf("watch relayed requests: %w", wr.Err())
			}
			for _, ev := range wr.Events {
				o.take(ctx, ev.Kv)
			}
		}
	}
}

// take carries out the request kv when this replica owns its environment
// and is the one that deleted its key.
func (o *Operator) take(ctx context.Context, kv *mvccpb.KeyValue) {
	rest := strings.TrimPrefix(string(kv.Key), o.c.o.Prefix+"requests/")
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return
	}
	name, id := rest[:i], rest[i+1:]
	if _, ok := o.c.Owned(name); !ok {
		return
	}
	var req relayed
	if err := json.Unmarshal(kv.Value, &req); err != nil {
		o.c.o.Logger.Warn().Err(err).Str("environment", name).Msg("unreadable relayed request")
		return
	}
	cli, lease := o.c.o.Client, clientv3.LeaseID(kv.Lease)
	rctx, cancel := o.c.request(ctx)
	resp, err := cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(string(kv.Key)), "=", kv.CreateRevision)).
		Then(clientv3.OpDelete(string(kv.Key))).Commit()
	cancel()
	if err != nil || !resp.Succeeded {
		return // another replica took it, or its requester went away
	}
	go func() {
		octx, cancel := context.WithTimeout(ctx, o.opTimeout)
		defer cancel()
		o.c.o.Logger.Info().Str("environment", name).Str("op", req.Op).Str("from", req.From).Msg("request relayed by another replica")
		d, err := o.run(octx, name, req)
		a := answer{By: o.c.o.Replica, Decision: d}
		a.Error, a.Kind = encodeError(err)
		body, _ := json.Marshal(a)
		rctx, cancel := o.c.request(ctx)
		defer cancel()
		if _, err := cli.Put(rctx, o.c.o.Prefix+"replies/"+id, string(body), clientv3.WithLease(lease)); err != nil {
			o.c.o.Logger.Warn().Err(err).Str("environment", name).Str("from", req.From).Msg("cannot answer a relayed request (its requester went away?)")
		}
	}()
}
