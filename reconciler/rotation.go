package reconciler

import (
	"context"
	"errors"
	"fmt"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/traffic"
)

// rotation runs a rollout's batches with each host out of its load
// balancer (the environment's traffic hooks) while it is applied and
// verified. Hosts that fail stay out; the rollout puts them back after
// their rollback (backIn), or leaves them out when it goes on without one.
type rotation struct {
	bal traffic.Balancer
	// held are the hosts taken out whose apply or verification failed.
	held []*hostRun
}

// runBatchOutOfRotation is runBatch between the traffic hooks: every host
// of the batch is taken out (and drained) first, those taken out are
// applied and verified, and those that passed go back in. A host that
// cannot be taken out is not applied and fails; one that cannot be put
// back fails too. Without traffic hooks it is runBatch.
func (r *Reconciler) runBatchOutOfRotation(ctx context.Context, env *config.Environment, b []*hostRun, rot *rotation) []hostOutcome {
	if rot.bal == nil {
		return r.runBatch(ctx, env.Name, b, env.Rollout.Parallelism)
	}
	outs := make([]hostOutcome, len(b))
	out := make([]bool, len(b))
	forEach(len(b), env.Rollout.Parallelism, func(i int) {
		out[i] = r.takeOut(ctx, env, b[i], rot.bal, &outs[i])
	})
	var ready []*hostRun
	var at []int
	for i := range b {
		if out[i] {
			ready, at = append(ready, b[i]), append(at, i)
		}
	}
	for j, o := range r.runBatch(ctx, env.Name, ready, env.Rollout.Parallelism) {
		outs[at[j]] = o
	}
	forEach(len(b), env.Rollout.Parallelism, func(i int) {
		if !out[i] {
			return
		}
		if outs[i].err != nil || ctx.Err() != nil {
			b[i].log.Warn().Msg("host stays out of rotation")
			return
		}
		if err := r.putBack(ctx, env, b[i], rot.bal); err != nil {
			outs[i].err = err
		}
	})
	for i := range b {
		if out[i] && outs[i].err != nil {
			rot.held = append(rot.held, b[i])
		}
	}
	return outs
}

// takeOut takes h out of rotation and reports whether it may be applied.
// A host still busy at the drain timeout is applied anyway; a hook that
// fails leaves the host unapplied and failed (and asks the balancer to
// take it back, since nothing changed on it).
func (r *Reconciler) takeOut(ctx context.Context, env *config.Environment, h *hostRun, bal traffic.Balancer, o *hostOutcome) bool {
	tctx, cancel := context.WithTimeout(ctx, traffic.DrainTimeout(env.Traffic))
	defer cancel()
	start := r.now()
	err := bal.Out(tctx, env.Name, h.host)
	switch {
	case err == nil:
		h.log.Info().Dur("duration_ms", r.now().Sub(start)).Msg("host out of rotation")
		return true
	case errors.Is(err, traffic.ErrNotDrained) && ctx.Err() == nil:
		h.log.Warn().Err(err).Msg("host out of rotation, not drained; applying anyway")
		return true
	}
	o.err = fmt.Errorf("take %s out of rotation: %w", h.host.Name, err)
	if ctx.Err() == nil {
		if err := r.putBack(ctx, env, h, bal); err != nil {
			h.log.Error().Err(err).Msg("cannot put host back in rotation")
		}
	}
	return false
}

// putBack puts h back in rotation.
func (r *Reconciler) putBack(ctx context.Context, env *config.Environment, h *hostRun, bal traffic.Balancer) error {
	tctx, cancel := context.WithTimeout(ctx, traffic.DrainTimeout(env.Traffic))
	defer cancel()
	if err := bal.In(tctx, env.Name, h.host); err != nil {
		return fmt.Errorf("put %s back in rotation: %w", h.host.Name, err)
	}
	h.log.Info().Msg("host back in rotation")
	return nil
}

// backIn puts the held hosts back once their rollback is done; it
// returns what failed.
func (r *Reconciler) backIn(ctx context.Context, env *config.Environment, rot *rotation) error {
	var errs []error
	for _, h := range rot.held {
		if err := r.putBack(ctx, env, h, rot.bal); err != nil {
			h.log.Error().Err(err).Msg("cannot put host back in rotation after the rollback")
			errs = append(errs, err)
		}
	}
	rot.held = nil
	return errors.Join(errs...)
}
