package reconciler

import (
	"fmt"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// setRefused records a source's verdict on its head: a refused revision
// (its signature) is kept until the source sends one it accepts. Every
// environment of the source shows the refusal and reports it once.
func (r *Reconciler) setRefused(rev sources.Revision) {
	r.mu.Lock()
	_, had := r.refused[rev.Source]
	if rev.Refused == "" {
		delete(r.refused, rev.Source)
	} else {
		r.refused[rev.Source] = rev
	}
	var envs []string
	for name, st := range r.envs {
		if snap := st.snap.Load(); snap.source == rev.Source && snap.rec.State != status.StateRemoved {
			envs = append(envs, name)
		}
	}
	r.mu.Unlock()
	if rev.Refused == "" && !had {
		return
	}
	for _, name := range envs {
		r.send(name, request{kind: reqRefused, rev: rev})
	}
}

// refusedNotice is setRefused on the environment's worker: a refusal is
// reported once (and again at the reminder interval), an acceptance clears it.
func (r *Reconciler) refusedNotice(st *envState, rev sources.Revision) {
	st.refused = ""
	if rev.Refused != "" {
		st.refused = fmt.Sprintf("head %s of source %s refused: %s", rev.Short(), rev.Source, rev.Refused)
	}
	if rev.Refused == "" {
		r.noticeDue(st, noticeRefused, "")
		return
	}
	if !r.noticeDue(st, noticeRefused, rev.Commit) {
		return
	}
	r.report(status.Report{Environment: st.name(), Source: rev.Source, Commit: rev.Commit, Status: status.StatusFailure,
		Description: fmt.Sprintf("commit %s of source %s refused (%s); %s stays applied", rev.Short(), rev.Source, rev.Refused, st.rec.Applied.Short())})
}
