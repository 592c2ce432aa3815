package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/internal/secrets"
)

// The top-level buckets of the bbolt store.
var (
	bucketEnvs    = []byte("envs")
	bucketHistory = []byte("history")
	bucketJournal = []byte("journal")
	bucketFirst   = []byte("first_managed")
	// bucketDeliveries held the webhook deliveries by key in stores
	// written before bucketDeliveryExpiry held them alone; it is migrated
	// and removed when such a store opens.
	bucketDeliveries = []byte("deliveries")
	// bucketDeliveryExpiry holds the webhook deliveries by the time first
	// seen (see delivery.go).
	bucketDeliveryExpiry = []byte("delivery_expiry")
	keyMeta              = []byte("meta")
	keyEntries           = []byte("entries")
)

// openTimeout bounds how long Open waits for another process holding
// the database's lock, so a second daemon on the same state directory fails
// clearly instead of hanging.
const openTimeout = 5 * time.Second

// HistoryRetention is how many runs the store keeps per environment, as
// many as one API request may ask for. Runs are recorded for every rollout
// and for every drift pass that did something or failed, so a host that
// stays broken would otherwise grow the file by one run per interval,
// without end.
const HistoryRetention = 10000

// BoltStore is the embedded Store, one bbolt file. Every write is synced
// to disk before it returns; concurrent writes share one transaction and
// one sync (see groupCommit).
type BoltStore struct {
	db    *bolt.DB
	group *groupCommit
	// keep is how many runs of each environment's history are kept.
	keep uint64
	// box seals what the journal keeps of secret resources.
	box *secrets.Box
	// deliveries looks up the webhook deliveries the store holds.
	deliveries *deliverySet
}

var _ Store = (*BoltStore)(nil)

// Open opens (creating if needed) the bbolt store at path.
func Open(path string) (*BoltStore, error) {
	// The freelist is not written at each commit (NoFreelistSync) but
	// rebuilt by scanning the file when it opens, and kept as a hash map:
	// etcd's settings for the same library. A commit then writes only the
	// pages it changed and its meta page.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	var deliveries *deliverySet
	err = db.Update(func(tx *bolt.Tx) error {
		indexed := tx.Bucket(bucketDeliveryExpiry) != nil
		for _, b := range [][]byte{bucketEnvs, bucketHistory, bucketJournal, bucketFirst, bucketDeliveryExpiry} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := migrateDeliveries(tx, indexed); err != nil {
			return err
		}
		deliveries = loadDeliveries(tx)
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise state store %s: %w", path, err)
	}
	box, err := loadStoreBox(path)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &BoltStore{db: db, group: &groupCommit{db: db}, keep: HistoryRetention, box: box, deliveries: deliveries}, nil
}

// Fenced returns s: one daemon alone owns every environment, so a bbolt
// store has nothing to fence on.
func (s *BoltStore) Fenced(Fence) Store { return s }

// Path is the database file's path.
func (s *BoltStore) Path() string { return s.db.Path() }

// Close closes the database file.
func (s *BoltStore) Close() error { return s.db.Close() }

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Env returns an environment's record.
func (s *BoltStore) Env(name string) (rec EnvRecord, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEnvs).Get([]byte(name))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return EnvRecord{}, false, fmt.Errorf("read environment %s from store: %w", name, err)
	}
	return rec, ok, nil
}

// PutEnv replaces an environment's record.
func (s *BoltStore) PutEnv(rec EnvRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode environment %s: %w", rec.Name, err)
	}
	if err := s.group.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnvs).Put([]byte(rec.Name), data)
	}); err != nil {
		return fmt.Errorf("write environment %s to store: %w", rec.Name, err)
	}
	return nil
}

// Envs returns every environment's record, sorted by name.
func (s *BoltStore) Envs() ([]EnvRecord, error) {
	var out []EnvRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnvs).ForEach(func(_, v []byte) error {
			var rec EnvRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list environments in store: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// AddRun appends a run to the environment's history.
func (s *BoltStore) AddRun(r Run) (uint64, error) {
	var id uint64
	err := s.group.update(func(tx *bolt.Tx) (err error) {
		id, err = s.addRun(tx, r)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record run of %s: %w", r.Environment, err)
	}
	return id, nil
}

// addRun is AddRun within tx.
func (s *BoltStore) addRun(tx *bolt.Tx, r Run) (uint64, error) {
	b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(r.Environment))
	if err != nil {
		return 0, err
	}
	if r.ID, err = b.NextSequence(); err != nil {
		return 0, err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	if err := b.Put(itob(r.ID), data); err != nil {
		return 0, err
	}
	// IDs grow by one per run: everything at or below ID-keep goes,
	// oldest first (normally the one run that just fell out).
	if r.ID <= s.keep {
		return r.ID, nil
	}
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= r.ID-s.keep; k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return r.ID, nil
}

// UpdateRun replaces a run still in the history.
func (s *BoltStore) UpdateRun(r Run) (bool, error) {
	ok := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(r.Environment))
		if b == nil || b.Get(itob(r.ID)) == nil {
			return nil
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		ok = true
		return b.Put(itob(r.ID), data)
	})
	if err != nil {
		return false, fmt.Errorf("update run %d of %s: %w", r.ID, r.Environment, err)
	}
	return ok, nil
}

// History returns up to limit runs of env, newest first.
func (s *BoltStore) History(env string, limit int) ([]Run, error) {
	var out []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(env))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", env, err)
	}
	return out, nil
}
