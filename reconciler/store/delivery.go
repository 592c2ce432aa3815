package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Webhook deliveries live in two places: bucketDeliveries holds, per
// provider, each key with the time it was first seen (8 bytes, big-endian
// nanoseconds); bucketDeliveryExpiry indexes them by that time (key: the
// time, the provider, a zero byte, the delivery key; empty value). The
// index is in time order, so pruning reads only what expired, from its
// start, never the deliveries still in the window.

// pruneDeliveries bounds how many expired deliveries one MarkDelivery
// removes, so that no request pays for a backlog (after a daemon was down
// for a day, say). Each request adds at most two, so pruning keeps up.
const pruneDeliveries = 64

// MarkDelivery records a webhook delivery's keys; see Store. The lookup,
// the insert and a bounded prune are one transaction, committed together
// with the transactions of concurrent requests.
func (s *BoltStore) MarkDelivery(provider string, keys []string, now time.Time, window time.Duration) (seen bool, err error) {
	if len(keys) == 0 {
		return false, errors.New("mark delivery: no delivery key")
	}
	for _, k := range keys {
		if k == "" {
			return false, errors.New("mark delivery: empty delivery key")
		}
	}
	cutoff := now.Add(-window).UnixNano()
	err = s.group.update(func(tx *bolt.Tx) error {
		seen = false
		if err := pruneExpired(tx, cutoff, pruneDeliveries); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketDeliveries).CreateBucketIfNotExists([]byte(provider))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if v := b.Get([]byte(k)); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= cutoff {
				// The first sighting stays recorded: a replayed delivery
				// must not extend its own window.
				seen = true
				continue
			}
			if err := putDelivery(tx, provider, k, now.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("mark %s delivery %s: %w", provider, keys[0], err)
	}
	return seen, nil
}

// putDelivery records key of provider as seen at (nanoseconds), with its
// index entry.
func putDelivery(tx *bolt.Tx, provider, key string, at int64) error {
	b, err := tx.Bucket(bucketDeliveries).CreateBucketIfNotExists([]byte(provider))
	if err != nil {
		return err
	}
	if err := b.Put([]byte(key), itob(uint64(at))); err != nil {
		return err
	}
	return tx.Bucket(bucketDeliveryExpiry).Put(expiryKey(at, provider, key), nil)
}

func expiryKey(at int64, provider, key string) []byte {
	k := make([]byte, 0, 8+len(provider)+1+len(key))
	k = binary.BigEndian.AppendUint64(k, uint64(at))
	k = append(k, provider...)
	k = append(k, 0)
	return append(k, key...)
}

// pruneExpired removes up to limit deliveries first seen before cutoff,
// oldest first. A key seen again after it expired has a newer time in its
// bucket and an index entry of its own; only its stale index entry goes.
func pruneExpired(tx *bolt.Tx, cutoff int64, limit int) error {
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
		provider, key, ok := bytes.Cut(k[8:], []byte{0})
		if !ok {
			continue
		}
		b := tx.Bucket(bucketDeliveries).Bucket(provider)
		if b == nil {
			continue
		}
		if v := b.Get(key); v != nil && bytes.Equal(v, k[:8]) {
			if err := b.Delete(key); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexDeliveries gives every recorded delivery its index entry: the
// stores written before the index existed get one once, when opened.
func indexDeliveries(tx *bolt.Tx) error {
	return tx.Bucket(bucketDeliveries).ForEachBucket(func(provider []byte) error {
		return tx.Bucket(bucketDeliveries).Bucket(provider).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return nil
			}
			return tx.Bucket(bucketDeliveryExpiry).Put(expiryKey(int64(binary.BigEndian.Uint64(v)), string(provider), string(k)), nil)
		})
	})
}
