package reconciler

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MarkDelivery records a webhook delivery id; see Store.
func (s *BoltStore) MarkDelivery(provider, id string, now time.Time, window time.Duration) (seen bool, err error) {
	if id == "" {
		return false, errors.New("mark delivery: empty delivery id")
	}
	cutoff := now.Add(-window).UnixNano()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketDeliveries).CreateBucketIfNotExists([]byte(provider))
		if err != nil {
			return err
		}
		var expired [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < cutoff {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if v := b.Get([]byte(id)); v != nil {
			seen = true
			// The first sighting stays recorded: a replayed delivery must
			// not extend its own window.
			return nil
		}
		return b.Put([]byte(id), itob(uint64(now.UnixNano())))
	})
	if err != nil {
		return false, fmt.Errorf("mark %s delivery %s: %w", provider, id, err)
	}
	return seen, nil
}
