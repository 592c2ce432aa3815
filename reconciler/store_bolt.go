package reconciler

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/targets"
)

// The top-level buckets of the bbolt store.
var (
	bucketEnvs       = []byte("envs")
	bucketHistory    = []byte("history")
	bucketJournal    = []byte("journal")
	bucketFirst      = []byte("first_managed")
	bucketDeliveries = []byte("deliveries")
	keyMeta          = []byte("meta")
	keyEntries       = []byte("entries")
)

// openTimeout bounds how long OpenStore waits for another process holding
// the database's lock, so a second daemon on the same state directory fails
// clearly instead of hanging.
const openTimeout = 5 * time.Second

// BoltStore is the embedded Store, one bbolt file. Every write is one
// transaction, synced to disk before it returns.
type BoltStore struct {
	db *bolt.DB
}

var _ Store = (*BoltStore)(nil)

// OpenStore opens (creating if needed) the bbolt store at path.
func OpenStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEnvs, bucketHistory, bucketJournal, bucketFirst, bucketDeliveries} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise state store %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

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
	if err := s.db.Update(func(tx *bolt.Tx) error {
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(r.Environment))
		if err != nil {
			return err
		}
		if r.ID, err = b.NextSequence(); err != nil {
			return err
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(itob(r.ID), data)
	})
	if err != nil {
		return 0, fmt.Errorf("record run of %s: %w", r.Environment, err)
	}
	return r.ID, nil
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

// BeginJournal opens the journal of a rollout, replacing any earlier one.
func (s *BoltStore) BeginJournal(j Journal) error {
	for i := range j.Hosts {
		// Resources and checks are recorded per entry; the host itself is
		// only needed to reach it again.
		j.Hosts[i].Resources, j.Hosts[i].Checks = nil, nil
	}
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode journal of %s: %w", j.Environment, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal)
		if jb.Bucket([]byte(j.Environment)) != nil {
			if err := jb.DeleteBucket([]byte(j.Environment)); err != nil {
				return err
			}
		}
		b, err := jb.CreateBucket([]byte(j.Environment))
		if err != nil {
			return err
		}
		if _, err := b.CreateBucket(keyEntries); err != nil {
			return err
		}
		return b.Put(keyMeta, data)
	})
	if err != nil {
		return fmt.Errorf("begin journal of %s: %w", j.Environment, err)
	}
	return nil
}

func firstKey(env, host, id string) []byte {
	return []byte(env + "\x00" + host + "\x00" + id)
}

// RecordSnapshot appends a journal entry and records the first-managed state.
func (s *BoltStore) RecordSnapshot(env string, e JournalEntry) (uint64, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal).Bucket([]byte(env))
		if jb == nil {
			return errors.New("no rollout journal is open")
		}
		b := jb.Bucket(keyEntries)
		var err error
		if e.Seq, err = b.NextSequence(); err != nil {
			return err
		}
		data, err := encodeEntry(e)
		if err != nil {
			return err
		}
		if err := b.Put(itob(e.Seq), data); err != nil {
			return err
		}
		fk := firstKey(env, e.Host, e.Resource.ID())
		fb := tx.Bucket(bucketFirst)
		if fb.Get(fk) != nil {
			return nil
		}
		snap, err := json.Marshal(e.Snapshot)
		if err != nil {
			return err
		}
		return fb.Put(fk, snap)
	})
	if err != nil {
		return 0, fmt.Errorf("record snapshot of %s on %s: %w", e.Resource.ID(), e.Host, err)
	}
	return e.Seq, nil
}

// MarkApplied records that the entry's apply finished.
func (s *BoltStore) MarkApplied(env string, seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal).Bucket([]byte(env))
		if jb == nil {
			return errors.New("no rollout journal is open")
		}
		b := jb.Bucket(keyEntries)
		v := b.Get(itob(seq))
		if v == nil {
			return fmt.Errorf("no journal entry %d", seq)
		}
		// Only the flag changes, so the stored spec is patched as raw JSON
		// rather than decoded into its kind's type and encoded again.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		m["applied"] = json.RawMessage("true")
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(itob(seq), data)
	})
	if err != nil {
		return fmt.Errorf("mark journal entry %d of %s applied: %w", seq, env, err)
	}
	return nil
}

// OpenJournal returns the environment's journal and entries.
func (s *BoltStore) OpenJournal(env string) (*Journal, []JournalEntry, error) {
	var j *Journal
	var entries []JournalEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal).Bucket([]byte(env))
		if jb == nil {
			return nil
		}
		j = &Journal{}
		if err := json.Unmarshal(jb.Get(keyMeta), j); err != nil {
			return err
		}
		return jb.Bucket(keyEntries).ForEach(func(_, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			entries = append(entries, e)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read journal of %s: %w", env, err)
	}
	return j, entries, nil
}

// Journals lists the environments with an open journal.
func (s *BoltStore) Journals() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list open journals: %w", err)
	}
	return out, nil
}

// EndJournal closes the environment's journal.
func (s *BoltStore) EndJournal(env string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal)
		if jb.Bucket([]byte(env)) == nil {
			return nil
		}
		return jb.DeleteBucket([]byte(env))
	})
	if err != nil {
		return fmt.Errorf("end journal of %s: %w", env, err)
	}
	return nil
}

// FirstManaged returns what a resource was before driftless first changed it.
func (s *BoltStore) FirstManaged(env, host, id string) (st targets.State, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFirst).Get(firstKey(env, host, id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &st)
	})
	if err != nil {
		return targets.State{}, false, fmt.Errorf("read first-managed state of %s on %s: %w", id, host, err)
	}
	return st, ok, nil
}

// ForgetFirstManaged drops the first-managed record of a resource.
func (s *BoltStore) ForgetFirstManaged(env, host, id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFirst).Delete(firstKey(env, host, id))
	})
	if err != nil {
		return fmt.Errorf("forget first-managed state of %s on %s: %w", id, host, err)
	}
	return nil
}

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
