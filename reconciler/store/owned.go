package store

import "fmt"

// Owned returns base with each environment's writes bound to the fence
// fence gives for it at the time of the write (cluster mode: the token its
// worker took the environment with). A write for an environment fence
// gives none for fails with ErrFenced, having written nothing; reads and
// MarkDelivery go to base as they are.
func Owned(base Store, fence func(env string) (Fence, bool)) Store {
	return &owned{Store: base, fence: fence}
}

type owned struct {
	Store
	fence func(env string) (Fence, bool)
}

// to is base fenced for env.
func (o *owned) to(env string) (Store, error) {
	f, ok := o.fence(env)
	if !ok {
		return nil, fmt.Errorf("write for environment %s: %w", env, ErrFenced)
	}
	return o.Store.Fenced(f), nil
}

func (o *owned) PutEnv(rec EnvRecord) error {
	s, err := o.to(rec.Name)
	if err != nil {
		return err
	}
	return s.PutEnv(rec)
}

func (o *owned) AddRun(r Run) (uint64, error) {
	s, err := o.to(r.Environment)
	if err != nil {
		return 0, err
	}
	return s.AddRun(r)
}

func (o *owned) UpdateRun(r Run) (bool, error) {
	s, err := o.to(r.Environment)
	if err != nil {
		return false, err
	}
	return s.UpdateRun(r)
}

func (o *owned) BeginJournal(j Journal) error {
	s, err := o.to(j.Environment)
	if err != nil {
		return err
	}
	return s.BeginJournal(j)
}

func (o *owned) RecordSnapshots(env string, entries []JournalEntry) ([]uint64, error) {
	s, err := o.to(env)
	if err != nil {
		return nil, err
	}
	return s.RecordSnapshots(env, entries)
}

func (o *owned) FinishEntries(env string, applied, unstarted []uint64) error {
	s, err := o.to(env)
	if err != nil {
		return err
	}
	return s.FinishEntries(env, applied, unstarted)
}

func (o *owned) EndJournal(env string) error {
	s, err := o.to(env)
	if err != nil {
		return err
	}
	return s.EndJournal(env)
}

func (o *owned) CompleteJournal(rec EnvRecord, run Run) (uint64, error) {
	s, err := o.to(rec.Name)
	if err != nil {
		return 0, err
	}
	return s.CompleteJournal(rec, run)
}

func (o *owned) ForgetFirstManaged(env, host, id string) error {
	s, err := o.to(env)
	if err != nil {
		return err
	}
	return s.ForgetFirstManaged(env, host, id)
}
