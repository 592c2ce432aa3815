package reconciler

import (
	"fmt"

	"github.com/driftless/driftless/sources"
)

// setRefused records a source's verdict on its head: a refused revision
// (its signature) is kept until the source sends one it accepts. Every
// environment of the source shows the refusal and reports it once.
func (r *Reconciler) setRefused(rev sources.Revision) {
	r.mu.Lock()
	if rev.Refused == "" {
		delete(r.refused, rev.Source)
	} else {
		r.refused[rev.Source] = rev
	}
	var envs []*envState
	for _, st := range r.envs {
		if envSource(st) == rev.Source && st.rec.State != StateRemoved {
			envs = append(envs, st)
		}
	}
	r.mu.Unlock()
	for _, st := range envs {
		if rev.Refused == "" {
			r.noticeDue(st, noticeRefused, "")
			continue
		}
		if !r.noticeDue(st, noticeRefused, rev.Commit) {
			continue
		}
		r.mu.Lock()
		name, applied := st.rec.Name, st.rec.Applied
		r.mu.Unlock()
		r.report(Report{Environment: name, Source: rev.Source, Commit: rev.Commit, Status: StatusFailure,
			Description: fmt.Sprintf("commit %s of source %s refused (%s); %s stays applied", rev.Short(), rev.Source, rev.Refused, applied.Short())})
	}
}

// refusal describes the refused head of the environment's source ("" when
// none). The caller holds r.mu.
func (r *Reconciler) refusal(st *envState) string {
	rev, ok := r.refused[envSource(st)]
	if !ok {
		return ""
	}
	return fmt.Sprintf("head %s of source %s refused: %s", rev.Short(), rev.Source, rev.Refused)
}
