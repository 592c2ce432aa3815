package reconciler

import (
	"context"
	"fmt"
	"strings"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// Decide records an approval or a rejection of the revision held at the
// environment's gates. rev is its commit or a prefix of 7 characters at
// least; d carries who decided and how (its Commit and Environment are
// filled in). An approval lets the revision through the approval gate at
// once (the environment's worker looks again); a rejection keeps it from
// ever being applied and is recorded in history.
func (r *Reconciler) Decide(ctx context.Context, name, rev string, d store.Decision) (store.Decision, error) {
	if _, err := r.known(name); err != nil {
		return store.Decision{}, err
	}
	rp := r.call(ctx, name, request{kind: reqDecide, to: rev, d: d})
	return rp.dec, rp.err
}

// decide is Decide on the environment's worker.
func (r *Reconciler) decide(st *envState, rev string, d store.Decision) (store.Decision, error) {
	name := st.name()
	rev = strings.ToLower(strings.TrimSpace(rev))
	g, pol := st.rec.Gate, st.policy()
	verb := "reject"
	if d.Approved {
		verb = "approve"
	}
	switch {
	case len(rev) < 7:
		return store.Decision{}, fmt.Errorf("%s %s: revision %q is too short (7 characters at least)", verb, name, rev)
	case pol != nil && (pol.Approval == nil || !pol.Approval.Required):
		// (Without a configuration yet, after a restart, the recorded
		// gate alone says what waits.)
		return store.Decision{}, fmt.Errorf("%s %s: %w: the environment requires no approval", verb, name, status.ErrNotAwaiting)
	case g == nil || g.Revision.Commit == "" || !strings.HasPrefix(g.Revision.Commit, rev):
		held := "none"
		if g != nil && g.Revision.Commit != "" {
			held = g.Revision.Short() + " (" + g.State + ")"
		}
		return store.Decision{}, fmt.Errorf("%s %s: %w: %s is not the revision held at its gates (held: %s)", verb, name, status.ErrNotAwaiting, rev, held)
	case g.State == status.StateRejected:
		return store.Decision{}, fmt.Errorf("%s %s: %w: %s was rejected (%s)", verb, name, status.ErrNotAwaiting, g.Revision.Short(), g.Reason)
	}
	d.Environment, d.Commit = name, g.Revision.Commit
	if d.At.IsZero() {
		d.At = r.now()
	}
	r.record(st, d, g.Revision)
	return d, nil
}

// record keeps a decision in the environment's record (and, for a
// rejection, in history), logs and reports it. The worker then looks at
// its gates again.
func (r *Reconciler) record(st *envState, d store.Decision, rev sources.Revision) {
	r.update(st, func(rec *store.EnvRecord) {
		rec.Decisions = append(rec.Decisions, d)
		if n := len(rec.Decisions); n > maxDecisions {
			rec.Decisions = append([]store.Decision(nil), rec.Decisions[n-maxDecisions:]...)
		}
	})
	log := r.log.With().Str("environment", d.Environment).Str("revision", kit.Short(d.Commit)).Logger()
	if d.Approved {
		log.Info().Str("by", d.By).Str("via", d.Via).Msg("revision approved")
	} else {
		log.Warn().Str("by", d.By).Str("via", d.Via).Msg("revision rejected")
		run := store.Run{Environment: d.Environment, Revision: rev, Trigger: status.TriggerApproval, Start: d.At, End: d.At,
			Result: status.ResultRejected, Decision: &d, Error: "rejected by " + d.By}
		r.finish(context.Background(), st, &outcome{kind: outRejected, tg: target{rev: rev}, run: &run})
	}
}
