package store

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// BeginJournal opens the journal of a rollout, replacing any earlier one.
func (s *BoltStore) BeginJournal(j Journal) error {
	data, err := encodeJournal(j)
	if err != nil {
		return err
	}
	err = s.group.update(func(tx *bolt.Tx) error {
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

// encodeJournal encodes a rollout's journal with its hosts stripped to
// what reaches them again.
func encodeJournal(j Journal) ([]byte, error) {
	j.Hosts = append([]config.Host(nil), j.Hosts...)
	for i := range j.Hosts {
		// Resources and checks are recorded per entry; the host itself is
		// only needed to reach it again. Its variables may hold decrypted
		// secrets and are not needed for that either.
		j.Hosts[i].Resources, j.Hosts[i].Checks, j.Hosts[i].Vars = nil, nil, nil
	}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode journal of %s: %w", j.Environment, err)
	}
	return data, nil
}

// markApplied sets the applied flag of an encoded entry. Only the flag
// changes, so the stored spec is patched as raw JSON rather than decoded
// into its kind's type and encoded again.
func markApplied(v []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	m["applied"] = json.RawMessage("true")
	return json.Marshal(m)
}

func firstKey(env, host, id string) []byte {
	return []byte(env + "\x00" + host + "\x00" + id)
}

// RecordSnapshots appends journal entries and records first-managed states.
func (s *BoltStore) RecordSnapshots(env string, entries []JournalEntry) ([]uint64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	seqs := make([]uint64, len(entries))
	err := s.group.update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal).Bucket([]byte(env))
		if jb == nil {
			return errors.New("no rollout journal is open")
		}
		b := jb.Bucket(keyEntries)
		fb := tx.Bucket(bucketFirst)
		for i, e := range entries {
			var err error
			if e.Seq, err = b.NextSequence(); err != nil {
				return err
			}
			seqs[i] = e.Seq
			data, err := encodeSealed(s.box, e)
			if err != nil {
				return err
			}
			if err := b.Put(itob(e.Seq), data); err != nil {
				return err
			}
			fk := firstKey(env, e.Host, e.Resource.ID())
			if fb.Get(fk) != nil {
				continue
			}
			snap, err := encodeFirst(s.box, e)
			if err != nil {
				return err
			}
			if err := fb.Put(fk, snap); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d snapshot(s) on %s: %w", len(entries), entries[0].Host, err)
	}
	return seqs, nil
}

// FinishEntries marks entries applied and drops those never started.
func (s *BoltStore) FinishEntries(env string, applied, unstarted []uint64) error {
	if len(applied) == 0 && len(unstarted) == 0 {
		return nil
	}
	err := s.group.update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal).Bucket([]byte(env))
		if jb == nil {
			return errors.New("no rollout journal is open")
		}
		b := jb.Bucket(keyEntries)
		for _, seq := range applied {
			v := b.Get(itob(seq))
			if v == nil {
				return fmt.Errorf("no journal entry %d", seq)
			}
			data, err := markApplied(v)
			if err != nil {
				return err
			}
			if err := b.Put(itob(seq), data); err != nil {
				return err
			}
		}
		for _, seq := range unstarted {
			if err := b.Delete(itob(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish journal entries of %s: %w", env, err)
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
			e, err := decodeSealed(s.box, v)
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
	err := s.group.update(func(tx *bolt.Tx) error {
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

// CompleteJournal closes the environment's journal, writes its record and
// appends the rollout's run to history in one transaction.
func (s *BoltStore) CompleteJournal(rec EnvRecord, run Run) (uint64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode environment %s: %w", rec.Name, err)
	}
	var id uint64
	err = s.group.update(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJournal)
		if jb.Bucket([]byte(rec.Name)) != nil {
			if err := jb.DeleteBucket([]byte(rec.Name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketEnvs).Put([]byte(rec.Name), data); err != nil {
			return err
		}
		id, err = s.addRun(tx, run)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("complete journal of %s: %w", rec.Name, err)
	}
	return id, nil
}

// FirstManaged returns what a resource was before driftless first changed it.
func (s *BoltStore) FirstManaged(env, host, id string) (st targets.State, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFirst).Get(firstKey(env, host, id))
		if v == nil {
			return nil
		}
		ok = true
		return decodeFirst(s.box, v, &st)
	})
	if err != nil {
		return targets.State{}, false, fmt.Errorf("read first-managed state of %s on %s: %w", id, host, err)
	}
	return st, ok, nil
}

// ForgetFirstManaged drops the first-managed record of a resource.
func (s *BoltStore) ForgetFirstManaged(env, host, id string) error {
	err := s.group.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFirst).Delete(firstKey(env, host, id))
	})
	if err != nil {
		return fmt.Errorf("forget first-managed state of %s on %s: %w", id, host, err)
	}
	return nil
}
