package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/targets"
)

func (s *EtcdStore) journalPrefix(env string) string { return s.p + "journal/" + env + "/" }
func (s *EtcdStore) journalMeta(env string) string   { return s.journalPrefix(env) + "meta" }
func (s *EtcdStore) journalSeq(env string) string    { return s.journalPrefix(env) + "seq" }
func (s *EtcdStore) entryPrefix(env string) string   { return s.journalPrefix(env) + "e/" }
func (s *EtcdStore) entryKey(env string, seq uint64) string {
	return fmt.Sprintf("%s%016x", s.entryPrefix(env), seq)
}
func (s *EtcdStore) openMark(env string) string { return s.p + "journals/" + env }
func (s *EtcdStore) firstKey(env, host, id string) string {
	return s.p + "first/" + string(firstKey(env, host, id))
}

// errNoJournal is the error of a journal write without an open journal.
var errNoJournal = errors.New("no rollout journal is open")

// BeginJournal opens the journal of a rollout, replacing any earlier one.
// (A transaction may not put a key that one of its deletes covers, so the
// earlier entries are deleted and the meta and counter overwritten.)
func (s *EtcdStore) BeginJournal(j Journal) error {
	data, err := encodeJournal(j)
	if err != nil {
		return err
	}
	env := j.Environment
	_, err = s.commit(nil, []clientv3.Op{
		clientv3.OpDelete(s.entryPrefix(env), clientv3.WithPrefix()),
		clientv3.OpPut(s.journalMeta(env), string(data)),
		clientv3.OpPut(s.journalSeq(env), "0"),
		clientv3.OpPut(s.openMark(env), ""),
	})
	if err != nil {
		return fmt.Errorf("begin journal of %s: %w", env, err)
	}
	return nil
}

// RecordSnapshots appends journal entries and records first-managed
// states. The entries go in transactions of at most maxTxnOps operations
// and maxTxnBytes: all are committed before RecordSnapshots returns, so
// before any of their applies begins.
func (s *EtcdStore) RecordSnapshots(env string, entries []JournalEntry) ([]uint64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	seqs := make([]uint64, 0, len(entries))
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < maxTxnOps/2-2 {
			// Sizes are estimated from the spec's clear encoding; a
			// sealed entry is a little larger.
			data, err := encodeEntry(entries[n])
			if err != nil {
				return nil, fmt.Errorf("record snapshots on %s: %w", entries[0].Host, err)
			}
			if n > 0 && size+2*len(data) > maxTxnBytes {
				break
			}
			size += 2 * len(data)
			n++
		}
		got, err := s.recordChunk(env, entries[:n])
		if err != nil {
			return nil, fmt.Errorf("record %d snapshot(s) on %s: %w", n, entries[0].Host, err)
		}
		seqs = append(seqs, got...)
		entries = entries[n:]
	}
	return seqs, nil
}

// recordChunk records entries in one transaction, conditional on the
// journal's counter and on which first-managed states exist, as read just
// before.
func (s *EtcdStore) recordChunk(env string, entries []JournalEntry) ([]uint64, error) {
	for range casRetries {
		reads := []clientv3.Op{clientv3.OpGet(s.journalSeq(env)), clientv3.OpGet(s.journalMeta(env), clientv3.WithCountOnly())}
		for _, e := range entries {
			reads = append(reads, clientv3.OpGet(s.firstKey(env, e.Host, e.Resource.ID()), clientv3.WithCountOnly()))
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		cancel()
		if err != nil {
			return nil, err
		}
		seqKV := resp.Responses[0].GetResponseRange().Kvs
		if len(seqKV) == 0 || resp.Responses[1].GetResponseRange().Count == 0 {
			return nil, errNoJournal
		}
		last, err := strconv.ParseUint(string(seqKV[0].Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("journal counter %q: %w", seqKV[0].Value, err)
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(s.journalSeq(env)), "=", seqKV[0].ModRevision),
			clientv3.Compare(clientv3.CreateRevision(s.journalMeta(env)), ">", 0),
		}
		var ops []clientv3.Op
		seqs := make([]uint64, len(entries))
		firsts := map[string]bool{}
		for i, e := range entries {
			e.Seq = last + uint64(i) + 1
			seqs[i] = e.Seq
			data, err := encodeSealed(s.box, e)
			if err != nil {
				return nil, err
			}
			ops = append(ops, clientv3.OpPut(s.entryKey(env, e.Seq), string(data)))
			fk := s.firstKey(env, e.Host, e.Resource.ID())
			if resp.Responses[2+i].GetResponseRange().Count > 0 || firsts[fk] {
				continue
			}
			firsts[fk] = true
			snap, err := encodeFirst(s.box, e)
			if err != nil {
				return nil, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(fk), "=", 0))
			ops = append(ops, clientv3.OpPut(fk, string(snap)))
		}
		ops = append(ops, clientv3.OpPut(s.journalSeq(env), strconv.FormatUint(last+uint64(len(entries)), 10)))
		ok, err := s.commit(cmps, ops)
		if err != nil {
			return nil, err
		}
		if ok {
			return seqs, nil
		}
	}
	return nil, errors.New("the journal kept changing")
}

// FinishEntries marks entries applied and drops those never started.
func (s *EtcdStore) FinishEntries(env string, applied, unstarted []uint64) error {
	if err := s.finishApplied(env, applied); err != nil {
		return fmt.Errorf("finish journal entries of %s: %w", env, err)
	}
	for len(unstarted) > 0 {
		n := min(len(unstarted), maxTxnOps)
		ops := make([]clientv3.Op, 0, n)
		for _, seq := range unstarted[:n] {
			ops = append(ops, clientv3.OpDelete(s.entryKey(env, seq)))
		}
		ok, err := s.commit([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.journalMeta(env)), ">", 0)}, ops)
		if err == nil && !ok {
			err = errNoJournal
		}
		if err != nil {
			return fmt.Errorf("finish journal entries of %s: %w", env, err)
		}
		unstarted = unstarted[n:]
	}
	return nil
}

// finishApplied sets the applied flag of entries, a chunk per transaction,
// each conditional on the entries being as read.
func (s *EtcdStore) finishApplied(env string, applied []uint64) error {
	for len(applied) > 0 {
		n := min(len(applied), maxTxnOps-1)
		chunk := applied[:n]
		done := false
		for try := 0; try < casRetries && !done; try++ {
			reads := []clientv3.Op{clientv3.OpGet(s.journalMeta(env), clientv3.WithCountOnly())}
			for _, seq := range chunk {
				reads = append(reads, clientv3.OpGet(s.entryKey(env, seq)))
			}
			ctx, cancel := s.ctx()
			resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
			cancel()
			if err != nil {
				return err
			}
			if resp.Responses[0].GetResponseRange().Count == 0 {
				return errNoJournal
			}
			var cmps []clientv3.Cmp
			var ops []clientv3.Op
			for i, seq := range chunk {
				kvs := resp.Responses[1+i].GetResponseRange().Kvs
				if len(kvs) == 0 {
					return fmt.Errorf("no journal entry %d", seq)
				}
				data, err := markApplied(kvs[0].Value)
				if err != nil {
					return err
				}
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kvs[0].Key)), "=", kvs[0].ModRevision))
				ops = append(ops, clientv3.OpPut(string(kvs[0].Key), string(data)))
			}
			if done, err = s.commit(cmps, ops); err != nil {
				return err
			}
		}
		if !done {
			return errors.New("the journal kept changing")
		}
		applied = applied[n:]
	}
	return nil
}

// OpenJournal returns the environment's journal and entries, read at one
// revision.
func (s *EtcdStore) OpenJournal(env string) (*Journal, []JournalEntry, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.journalMeta(env)),
		clientv3.OpGet(s.entryPrefix(env), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)),
	).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("read journal of %s: %w", env, err)
	}
	meta := resp.Responses[0].GetResponseRange().Kvs
	if len(meta) == 0 {
		return nil, nil, nil
	}
	j := &Journal{}
	if err := json.Unmarshal(meta[0].Value, j); err != nil {
		return nil, nil, fmt.Errorf("read journal of %s: %w", env, err)
	}
	var entries []JournalEntry
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		e, err := decodeSealed(s.box, kv.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("read journal of %s: %w", env, err)
		}
		entries = append(entries, e)
	}
	return j, entries, nil
}

// Journals lists the environments with an open journal.
func (s *EtcdStore) Journals() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.p+"journals/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list open journals: %w", err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), s.p+"journals/"))
	}
	return out, nil
}

// EndJournal closes the environment's journal.
func (s *EtcdStore) EndJournal(env string) error {
	if _, err := s.commit(nil, s.closeJournal(env)); err != nil {
		return fmt.Errorf("end journal of %s: %w", env, err)
	}
	return nil
}

func (s *EtcdStore) closeJournal(env string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpDelete(s.journalPrefix(env), clientv3.WithPrefix()),
		clientv3.OpDelete(s.openMark(env)),
	}
}

// CompleteJournal closes the environment's journal, writes its record and
// appends the rollout's run to history in one transaction, which commits
// only while the journal it read is open. A completion whose answer was
// lost (a timeout, or the connection cut during a leader change or an
// etcd restart) may have been applied all the same: tried again, it finds
// the journal closed and its run in history, and returns that run's id
// instead of appending the run a second time.
func (s *EtcdStore) CompleteJournal(rec EnvRecord, run Run) (uint64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode environment %s: %w", rec.Name, err)
	}
	ops := append(s.closeJournal(rec.Name), clientv3.OpPut(s.envKey(rec.Name), string(data)))
	id, err := s.addRun(run, s.openMark(rec.Name), ops)
	if errors.Is(err, errNoJournal) {
		var found bool
		if id, found, err = s.recorded(run); err == nil && !found {
			// No journal was open: the record and the run all the same.
			id, err = s.addRun(run, "", ops)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("complete journal of %s: %w", rec.Name, err)
	}
	return id, nil
}

// recorded looks for run among the newest runs of its environment: the
// same start, revision and trigger (a rollout's run is built once, before
// its first try).
func (s *EtcdStore) recorded(run Run) (uint64, bool, error) {
	if run.Start.IsZero() {
		return 0, false, nil
	}
	runs, err := s.History(run.Environment, 4)
	if err != nil {
		return 0, false, err
	}
	for _, r := range runs {
		if r.Start.Equal(run.Start) && r.Revision.Commit == run.Revision.Commit && r.Trigger == run.Trigger {
			return r.ID, true, nil
		}
	}
	return 0, false, nil
}

// FirstManaged returns what a resource was before driftless first changed it.
func (s *EtcdStore) FirstManaged(env, host, id string) (st targets.State, ok bool, err error) {
	v, rev, err := s.get(s.firstKey(env, host, id))
	if err == nil && rev != 0 {
		ok = true
		err = decodeFirst(s.box, v, &st)
	}
	if err != nil {
		return targets.State{}, false, fmt.Errorf("read first-managed state of %s on %s: %w", id, host, err)
	}
	return st, ok, nil
}

// ForgetFirstManaged drops the first-managed record of a resource.
func (s *EtcdStore) ForgetFirstManaged(env, host, id string) error {
	if _, err := s.commit(nil, []clientv3.Op{clientv3.OpDelete(s.firstKey(env, host, id))}); err != nil {
		return fmt.Errorf("forget first-managed state of %s on %s: %w", id, host, err)
	}
	return nil
}
