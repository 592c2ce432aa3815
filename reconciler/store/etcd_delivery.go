package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Webhook deliveries in etcd: one key per delivery key (a hash of the
// provider and the key, so a sender's long keys cost no more than short
// ones), its value the time it was first seen, on a lease that outlives
// the replay window. Every replica marks and reads the same keys, so the
// window is one for all of them: a delivery taken by one replica is a
// replay at every other. Expiry is etcd's: a lease ends and its keys go,
// with no sweeper and no scan. A lease is shared by the deliveries of a
// tenth of a window, so a busy hook costs one lease per period, not one
// per request.

// leaseCache holds the lease new deliveries are put on.
type leaseCache struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
	window  time.Duration
}

// lease returns a lease that lives at least window from now: the cached
// one while it is younger than a tenth of window, else a new one of
// 1.1 windows.
func (s *EtcdStore) lease(window time.Duration) (clientv3.LeaseID, error) {
	c := &s.shared.leases
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.id != 0 && c.window == window && now.Sub(c.granted) < window/10 {
		return c.id, nil
	}
	ttl := int64((window + window/10 + time.Second - 1) / time.Second)
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant a delivery lease: %w", err)
	}
	c.id, c.granted, c.window = resp.ID, now, window
	return c.id, nil
}

func (s *EtcdStore) deliveryKey(provider, key string) string {
	h := hashDelivery([]byte(provider), []byte(key))
	return s.p + "delivery/" + provider + "/" + hex.EncodeToString(h[:])
}

// MarkDelivery records a webhook delivery's keys; see Store. The keys not
// seen within the window are put in one transaction conditional on each
// being as read, so of replicas marking the same delivery at once exactly
// one takes it as new; the others read again and find it.
func (s *EtcdStore) MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (bool, error) {
	if len(keys) == 0 {
		return false, errors.New("mark delivery: no delivery key")
	}
	ks := make([]string, 0, len(keys))
	dup := map[string]bool{}
	for _, k := range keys {
		if k == "" {
			return false, errors.New("mark delivery: empty delivery key")
		}
		if dk := s.deliveryKey(provider, k); !dup[dk] {
			dup[dk] = true
			ks = append(ks, dk)
		}
	}
	at, cutoff := now.UnixNano(), now.Add(-window).UnixNano()
	for range casRetries {
		seen, err := s.markOnce(ks, at, cutoff, window)
		if err != nil {
			// The delivery's keys are not shown: a sender chooses them.
			return false, fmt.Errorf("mark %s delivery: %w", provider, err)
		}
		if seen != nil {
			return *seen, nil
		}
	}
	return false, fmt.Errorf("mark %s delivery: its keys kept changing", provider)
}

// markOnce reads the keys and puts those not seen since cutoff; seen is
// nil when another writer changed one of them in between.
func (s *EtcdStore) markOnce(ks []string, at, cutoff int64, window time.Duration) (*bool, error) {
	reads := make([]clientv3.Op, len(ks))
	for i, k := range ks {
		reads[i] = clientv3.OpGet(k)
	}
	ctx, cancel := s.ctx()
	resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
	cancel()
	if err != nil {
		return nil, err
	}
	seen := false
	var cmps []clientv3.Cmp
	var fresh []string
	for i, k := range ks {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		rev := int64(0)
		if len(kvs) > 0 {
			rev = kvs[0].ModRevision
			// The first sighting stays: a replayed delivery must not
			// extend its own window.
			if first, err := strconv.ParseInt(string(kvs[0].Value), 10, 64); err == nil && first >= cutoff {
				seen = true
				continue
			}
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		fresh = append(fresh, k)
	}
	if len(fresh) == 0 {
		return &seen, nil
	}
	lease, err := s.lease(window)
	if err != nil {
		return nil, err
	}
	ops := make([]clientv3.Op, len(fresh))
	for i, k := range fresh {
		ops[i] = clientv3.OpPut(k, strconv.FormatInt(at, 10), clientv3.WithLease(lease))
	}
	// Deliveries are the replica's, not an environment's: never fenced.
	unfenced := *s
	unfenced.fence = Fence{}
	ok, err := unfenced.commit(cmps, ops)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The cached lease ended (etcd restored from a backup, say):
			// forget it, and the retry grants another.
			s.shared.leases.mu.Lock()
			s.shared.leases.id = 0
			s.shared.leases.mu.Unlock()
			return nil, nil
		}
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return &seen, nil
}

// compactLoop compacts etcd's revisions every period, to the revision
// the previous tick saw: what every replica read or wrote a period ago
// is history no watcher or reader still needs. Without compaction etcd
// keeps every revision of every key and reaches its quota.
func (s *EtcdStore) compactLoop(ctx context.Context, every time.Duration) {
	defer close(s.shared.done)
	t := time.NewTicker(every)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prev = s.compact(ctx, prev)
	}
}

// compact compacts to rev (when set) and returns the current revision.
// Several replicas compacting to the same revision is harmless: etcd
// answers the later ones that it is already compacted.
func (s *EtcdStore) compact(ctx context.Context, rev int64) int64 {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if rev > 0 {
		// Physical: the call returns once the old revisions are removed
		// from etcd's database, so the next compaction never overlaps it.
		_, _ = s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	}
	resp, err := s.cli.Get(ctx, s.p+"compact", clientv3.WithCountOnly())
	if err != nil {
		return rev
	}
	return resp.Header.Revision
}
