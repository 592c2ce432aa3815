package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/internal/secrets"
)

// The etcd store's keys, each under the configured prefix P:
//
//	P env/NAME                      the environment's record (JSON)
//	P runseq/NAME                   the id of its newest run
//	P hist/NAME/ID                  one run (ID: 16 hex digits)
//	P journals/NAME                 present while a rollout is open
//	P journal/NAME/meta             the open rollout's Journal
//	P journal/NAME/seq              the newest entry's sequence number
//	P journal/NAME/e/SEQ            one entry (SEQ: 16 hex digits)
//	P first/NAME\0HOST\0ID          a resource's first-managed state
//	P delivery/PROVIDER/HASH        a webhook delivery, on a lease
//
// Names of environments hold no '/' (config checks them), so a prefix
// of one environment never covers another's keys.

// The defaults of EtcdOptions.
const (
	// EtcdHistoryRetention is how many runs the etcd store keeps per
	// environment: a thousand environments then hold at most 100,000 runs,
	// each capped at maxRunBytes.
	EtcdHistoryRetention = 100
	// DefaultEtcdTimeout bounds each request to etcd.
	DefaultEtcdTimeout = 5 * time.Second
	// DefaultCompactEvery is how often the store compacts etcd's history
	// of revisions, to the revision it saw one period before.
	DefaultCompactEvery = 5 * time.Minute
)

// maxTxnOps stays under etcd's default limit of operations in one
// transaction (--max-txn-ops, 128); maxTxnBytes under its default largest
// request (--max-request-bytes, 1.5 MiB).
const (
	maxTxnOps   = 100
	maxTxnBytes = 1 << 20
)

// maxRunBytes caps one stored run: past it the run's diffs are dropped
// (the hosts, resources and actions stay), so that a rollout changing
// thousands of resources cannot take the store's quota.
const maxRunBytes = 16 << 10

// casRetries bounds the retries of a write whose comparison failed
// because another writer changed the same keys in between.
const casRetries = 16

// EtcdOptions configures an EtcdStore.
type EtcdOptions struct {
	// Client is connected to the etcd cluster; it stays the caller's.
	Client *clientv3.Client
	// Prefix starts every key (config.Cluster.Prefix).
	Prefix string
	// Box seals the journal entries of secret resources. Every replica
	// needs the same identity, so that any of them can finish a rollout
	// another began.
	Box *secrets.Box
	// History is how many runs are kept per environment
	// (EtcdHistoryRetention when 0).
	History int
	// Timeout bounds each request (DefaultEtcdTimeout when 0).
	Timeout time.Duration
	// CompactEvery is the compaction period (DefaultCompactEvery when 0;
	// negative: never, when etcd compacts by itself).
	CompactEvery time.Duration
}

// EtcdStore is the Store of cluster mode, in etcd. Every write is one etcd
// transaction; a fenced view (Fenced) adds its ownership comparison to
// each, so a replica that lost an environment writes nothing more of it.
type EtcdStore struct {
	cli     *clientv3.Client
	p       string
	box     *secrets.Box
	keep    uint64
	timeout time.Duration
	fence   Fence
	// shared is what every fenced view of the store shares.
	shared *etcdShared
}

// etcdShared is the state of an EtcdStore that its fenced views share:
// the delivery lease and the compactor.
type etcdShared struct {
	leases leaseCache
	stop   context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ Store = (*EtcdStore)(nil)

// OpenEtcd opens the store on a connected client, and starts its
// compactor.
func OpenEtcd(o EtcdOptions) (*EtcdStore, error) {
	if o.Client == nil || o.Box == nil {
		return nil, errors.New("open etcd store: a client and a box are needed")
	}
	if o.History <= 0 {
		o.History = EtcdHistoryRetention
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultEtcdTimeout
	}
	if o.CompactEvery == 0 {
		o.CompactEvery = DefaultCompactEvery
	}
	s := &EtcdStore{cli: o.Client, p: o.Prefix, box: o.Box, keep: uint64(o.History), timeout: o.Timeout,
		shared: &etcdShared{done: make(chan struct{})}}
	ctx, cancel := context.WithCancel(context.Background())
	s.shared.stop = cancel
	if o.CompactEvery > 0 {
		go s.compactLoop(ctx, o.CompactEvery)
	} else {
		close(s.shared.done)
	}
	return s, nil
}

// Fenced returns a view of s whose writes hold only while f does.
func (s *EtcdStore) Fenced(f Fence) Store {
	v := *s
	v.fence = f
	return &v
}

// Close stops the compactor. The client stays open: it is the caller's.
func (s *EtcdStore) Close() error {
	s.shared.once.Do(func() {
		s.shared.stop()
		<-s.shared.done
	})
	return nil
}

func (s *EtcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *EtcdStore) envKey(name string) string { return s.p + "env/" + name }
func (s *EtcdStore) runSeqKey(env string) string {
	return s.p + "runseq/" + env
}
func (s *EtcdStore) histPrefix(env string) string { return s.p + "hist/" + env + "/" }
func (s *EtcdStore) histKey(env string, id uint64) string {
	return fmt.Sprintf("%s%016x", s.histPrefix(env), id)
}

// commit runs one write transaction: when cmps (and the fence) hold, ops.
// ok is false when one of cmps failed (the caller reads again and
// retries); an unheld fence is ErrFenced.
func (s *EtcdStore) commit(cmps []clientv3.Cmp, ops []clientv3.Op) (ok bool, err error) {
	var orElse []clientv3.Op
	if s.fence.Key != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.fence.Key), "=", s.fence.Token))
		orElse = append(orElse, clientv3.OpGet(s.fence.Key, clientv3.WithKeysOnly()))
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
	if err != nil {
		return false, refused(err)
	}
	if resp.Succeeded {
		return true, nil
	}
	if s.fence.Key != "" {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != s.fence.Token {
			return false, ErrFenced
		}
	}
	return false, nil
}

// refused marks a write's error as ErrRefused when it is one of etcd's
// errors that the same write gets again until an operator acts.
func refused(err error) error {
	for _, r := range []error{rpctypes.ErrNoSpace, rpctypes.ErrRequestTooLarge, rpctypes.ErrTooManyOps,
		rpctypes.ErrDuplicateKey, rpctypes.ErrPermissionDenied} {
		if errors.Is(err, r) {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	return err
}

// get reads one key: its value and its mod revision (0: absent).
func (s *EtcdStore) get(key string) ([]byte, int64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// Env returns an environment's record.
func (s *EtcdStore) Env(name string) (rec EnvRecord, ok bool, err error) {
	v, rev, err := s.get(s.envKey(name))
	if err == nil && rev != 0 {
		ok = true
		err = json.Unmarshal(v, &rec)
	}
	if err != nil {
		return EnvRecord{}, false, fmt.Errorf("read environment %s from etcd: %w", name, err)
	}
	return rec, ok, nil
}

// PutEnv replaces an environment's record.
func (s *EtcdStore) PutEnv(rec EnvRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode environment %s: %w", rec.Name, err)
	}
	if _, err := s.commit(nil, []clientv3.Op{clientv3.OpPut(s.envKey(rec.Name), string(data))}); err != nil {
		return fmt.Errorf("write environment %s to etcd: %w", rec.Name, err)
	}
	return nil
}

// Envs returns every environment's record, sorted by name (etcd's key
// order).
func (s *EtcdStore) Envs() ([]EnvRecord, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.p+"env/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list environments in etcd: %w", err)
	}
	out := make([]EnvRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec EnvRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("list environments in etcd: %s: %w", kv.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// AddRun appends a run to the environment's history: the run's id is the
// environment's run counter plus one, written with the run in one
// transaction that also removes the run falling out of the retention.
func (s *EtcdStore) AddRun(r Run) (uint64, error) {
	id, err := s.addRun(r, "", nil)
	if err != nil {
		return 0, fmt.Errorf("record run of %s: %w", r.Environment, err)
	}
	return id, nil
}

// addRun is AddRun with ops added to its transaction. A guard key (when
// not "") must exist, and the transaction commits only while it is the
// key read with the counter (same create revision): errNoJournal when it
// is gone.
func (s *EtcdStore) addRun(r Run, guard string, ops []clientv3.Op) (uint64, error) {
	for range casRetries {
		reads := []clientv3.Op{clientv3.OpGet(s.runSeqKey(r.Environment))}
		if guard != "" {
			reads = append(reads, clientv3.OpGet(guard, clientv3.WithKeysOnly()))
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		cancel()
		if err != nil {
			return 0, err
		}
		var cmps []clientv3.Cmp
		if guard != "" {
			kvs := resp.Responses[1].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return 0, errNoJournal
			}
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(guard), "=", kvs[0].CreateRevision))
		}
		last, rev := uint64(0), int64(0)
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			if last, err = strconv.ParseUint(string(kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("run counter %q: %w", kvs[0].Value, err)
			}
			rev = kvs[0].ModRevision
		}
		r.ID = last + 1
		data, err := encodeRun(r)
		if err != nil {
			return 0, err
		}
		txn := append(slices.Clip(ops),
			clientv3.OpPut(s.runSeqKey(r.Environment), strconv.FormatUint(r.ID, 10)),
			clientv3.OpPut(s.histKey(r.Environment, r.ID), string(data)),
		)
		if r.ID > s.keep {
			// Everything at or below ID-keep goes: normally the one run
			// that just fell out.
			txn = append(txn, clientv3.OpDelete(s.histPrefix(r.Environment), clientv3.WithRange(s.histKey(r.Environment, r.ID-s.keep+1))))
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.runSeqKey(r.Environment)), "=", rev))
		ok, err := s.commit(cmps, txn)
		if err != nil {
			return 0, err
		}
		if ok {
			return r.ID, nil
		}
	}
	return 0, errors.New("the run counter kept changing")
}

// encodeRun encodes a run within maxRunBytes, dropping its diffs when
// they would not fit, then changes, then the end of its error text: the
// same run is never refused by etcd for its size.
func encodeRun(r Run) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil || len(data) <= maxRunBytes {
		return data, err
	}
	r.Changed = append([]ResourceChange(nil), r.Changed...)
	for i := range r.Changed {
		r.Changed[i].Diff = ""
	}
	data, err = json.Marshal(r)
	if err != nil || len(data) <= maxRunBytes {
		return data, err
	}
	// Still too large: thousands of changes, or an error quoting a
	// host's long output. Keep the first changes, then the error's start.
	for len(data) > maxRunBytes && len(r.Changed) > 0 {
		r.Changed = r.Changed[:len(r.Changed)/2]
		if data, err = json.Marshal(r); err != nil {
			return nil, err
		}
	}
	if len(data) > maxRunBytes && len(r.Error) > maxRunBytes/4 {
		r.Error = strings.ToValidUTF8(r.Error[:maxRunBytes/4], "") + " [cut]"
		data, err = json.Marshal(r)
	}
	return data, err
}

// UpdateRun replaces a run still in the history.
func (s *EtcdStore) UpdateRun(r Run) (bool, error) {
	data, err := encodeRun(r)
	if err != nil {
		return false, fmt.Errorf("update run %d of %s: %w", r.ID, r.Environment, err)
	}
	k := s.histKey(r.Environment, r.ID)
	ok, err := s.commit([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)}, []clientv3.Op{clientv3.OpPut(k, string(data))})
	if err != nil {
		return false, fmt.Errorf("update run %d of %s: %w", r.ID, r.Environment, err)
	}
	return ok, nil
}

// History returns up to limit runs of env, newest first.
func (s *EtcdStore) History(env string, limit int) ([]Run, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	resp, err := s.cli.Get(ctx, s.histPrefix(env), opts...)
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", env, err)
	}
	out := make([]Run, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("read history of %s: %w", env, err)
		}
		out = append(out, r)
	}
	return out, nil
}
