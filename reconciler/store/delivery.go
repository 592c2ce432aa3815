package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Webhook deliveries are kept on disk once, in bucketDeliveryExpiry, in the
// order they were first seen (key: the time, 8 bytes of big-endian
// nanoseconds, the provider, a zero byte, the delivery key; empty value),
// and looked up in memory: a set of every key the index holds, with the
// time it was first seen, loaded when the store opens. Recording a delivery
// appends to the index's end, so a request's transaction writes the same
// few pages whatever the window holds; a lookup keyed on disk made every
// request write a leaf at a random place of a tree that grows with the
// window (330 pages per commit at 200,000 deliveries, against 38 with an
// empty window). Pruning reads the index from its start and removes only
// what expired.

// pruneDeliveries bounds how many expired deliveries one MarkDelivery
// removes, so that no request pays for a backlog (after a daemon was down
// for a day, say). Each request adds at most two, so pruning keeps up.
const pruneDeliveries = 64

// deliverySet is the in-memory lookup of the recorded deliveries: the time
// (nanoseconds) each key was first seen, by a 128-bit hash of provider and
// key, so that a sender's long keys take no more memory than short ones.
type deliverySet struct {
	mu   sync.Mutex
	seen map[deliveryHash]int64
}

type deliveryHash [16]byte

func hashDelivery(provider, key []byte) deliveryHash {
	b := make([]byte, 0, len(provider)+1+len(key))
	b = append(append(append(b, provider...), 0), key...)
	sum := sha256.Sum256(b)
	return deliveryHash(sum[:16])
}

// mark records, at at, every key of hashes not seen since cutoff, and
// returns whether one was, and the indexes of those it recorded.
func (d *deliverySet) mark(hashes []deliveryHash, at, cutoff int64) (seen bool, added []int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, h := range hashes {
		if first, ok := d.seen[h]; ok && first >= cutoff {
			// The first sighting stays recorded: a replayed delivery
			// must not extend its own window.
			seen = true
			continue
		}
		d.seen[h] = at
		added = append(added, i)
	}
	return seen, added
}

// unmark forgets what mark recorded at at, when its transaction failed.
func (d *deliverySet) unmark(hashes []deliveryHash, added []int, at int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range added {
		if d.seen[hashes[i]] == at {
			delete(d.seen, hashes[i])
		}
	}
}

// forget drops a key whose index entry at at was pruned, unless the key
// was seen again since.
func (d *deliverySet) forget(h deliveryHash, at int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if first, ok := d.seen[h]; ok && first == at {
		delete(d.seen, h)
	}
}

// len is how many keys the set holds.
func (d *deliverySet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// MarkDelivery records a webhook delivery's keys; see Store. The lookup is
// in memory; the keys not seen before are appended to the index, with a
// bounded prune, in a transaction committed together with those of
// concurrent requests, before MarkDelivery returns. A delivery whose every
// key is known writes nothing. A key is marked before its transaction
// commits, so the same delivery arriving meanwhile is answered as a
// replay; if the commit fails, the mark is taken back.
func (s *BoltStore) MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (bool, error) {
	if len(keys) == 0 {
		return false, errors.New("mark delivery: no delivery key")
	}
	hashes := make([]deliveryHash, len(keys))
	for i, k := range keys {
		if k == "" {
			return false, errors.New("mark delivery: empty delivery key")
		}
		hashes[i] = hashDelivery([]byte(provider), []byte(k))
	}
	at, cutoff := now.UnixNano(), now.Add(-window).UnixNano()
	seen, added := s.deliveries.mark(hashes, at, cutoff)
	if len(added) == 0 {
		return seen, nil
	}
	err := s.group.update(func(tx *bolt.Tx) error {
		if err := s.pruneExpired(tx, cutoff, pruneDeliveries); err != nil {
			return err
		}
		idx := tx.Bucket(bucketDeliveryExpiry)
		for _, i := range added {
			if err := idx.Put(expiryKey(at, provider, keys[i]), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.deliveries.unmark(hashes, added, at)
		return false, fmt.Errorf("mark %s delivery %s: %w", provider, keys[0], err)
	}
	return seen, nil
}

func expiryKey(at int64, provider, key string) []byte {
	k := make([]byte, 0, 8+len(provider)+1+len(key))
	k = binary.BigEndian.AppendUint64(k, uint64(at))
	k = append(k, provider...)
	k = append(k, 0)
	return append(k, key...)
}

// parseExpiryKey splits an index key into its time, provider and delivery
// key.
func parseExpiryKey(k []byte) (at int64, provider, key []byte, ok bool) {
	if len(k) < 9 {
		return 0, nil, nil, false
	}
	provider, key, ok = bytes.Cut(k[8:], []byte{0})
	return int64(binary.BigEndian.Uint64(k)), provider, key, ok
}

// pruneExpired removes up to limit deliveries first seen before cutoff,
// oldest first, from the index and from the set. A key seen again after it
// expired has a newer time in the set and an index entry of its own; only
// its stale index entry goes. When the transaction fails after this, the
// set has lost only keys that had expired.
func (s *BoltStore) pruneExpired(tx *bolt.Tx, cutoff int64, limit int) error {
	idx := tx.Bucket(bucketDeliveryExpiry)
	var expired [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < limit; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) >= cutoff {
			break
		}
		expired = append(expired, append([]byte(nil), k...))
	}
	for _, k := range expired {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if at, provider, key, ok := parseExpiryKey(k); ok {
			s.deliveries.forget(hashDelivery(provider, key), at)
		}
	}
	return nil
}

// putDelivery records key of provider as seen at (nanoseconds), in the
// index and the set, within tx: for tests and benchmarks that fill a
// window.
func (s *BoltStore) putDelivery(tx *bolt.Tx, provider, key string, at int64) error {
	if err := tx.Bucket(bucketDeliveryExpiry).Put(expiryKey(at, provider, key), nil); err != nil {
		return err
	}
	s.deliveries.mark([]deliveryHash{hashDelivery([]byte(provider), []byte(key))}, at, at+1)
	return nil
}

// loadDeliveries reads the index into a new set; a key with several
// entries keeps its newest.
func loadDeliveries(tx *bolt.Tx) *deliverySet {
	d := &deliverySet{seen: map[deliveryHash]int64{}}
	c := tx.Bucket(bucketDeliveryExpiry).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		at, provider, key, ok := parseExpiryKey(k)
		if !ok {
			continue
		}
		h := hashDelivery(provider, key)
		if first, ok := d.seen[h]; !ok || at > first {
			d.seen[h] = at
		}
	}
	return d
}

// migrateDeliveries moves the deliveries of a store written before they
// were kept in the index alone: bucketDeliveries held each key with the
// time it was first seen (8 bytes, big-endian nanoseconds), per provider.
// Each gets its index entry, unless the index already had them all, and
// the bucket goes.
func migrateDeliveries(tx *bolt.Tx, indexed bool) error {
	old := tx.Bucket(bucketDeliveries)
	if old == nil {
		return nil
	}
	if !indexed {
		err := old.ForEachBucket(func(provider []byte) error {
			return old.Bucket(provider).ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					return nil
				}
				return tx.Bucket(bucketDeliveryExpiry).Put(expiryKey(int64(binary.BigEndian.Uint64(v)), string(provider), string(k)), nil)
			})
		})
		if err != nil {
			return err
		}
	}
	return tx.DeleteBucket(bucketDeliveries)
}
