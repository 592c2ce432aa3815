package reconciler

import (
	"context"
	"encoding/json"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// defaultInventoryInterval is how often an inventory is read again when
// its environment does not say.
const defaultInventoryInterval = 5 * time.Minute

// refreshInventory reads the inventory of the applied revision again when
// its interval has passed (checked at each drift tick) and rolls the
// environment out when its hosts changed: a new host is brought to the
// declared state; a host gone from the inventory is no longer declared,
// so nothing touches it again. It reports whether it rolled out. The
// caller is the environment's worker.
func (r *Reconciler) refreshInventory(ctx context.Context, st *envState, trigger string) (store.Run, bool) {
	d := st.desired
	applied := st.applied
	due := d != nil && d.env.Inventory != nil && d.rev.Commit == st.rec.Applied.Commit && applied != nil &&
		r.now().Sub(st.inventoryAt) >= orDefault(d.env.Inventory.Interval.D(), defaultInventoryInterval)
	if due {
		st.inventoryAt = r.now()
	}
	if !due {
		return store.Run{}, false
	}
	log := r.log.With().Str("environment", d.env.Name).Str("revision", d.rev.Short()).Logger()
	cfg, err := r.load(d.rev, true)
	if err != nil {
		log.Error().Err(err).Msg("inventory refresh: revision does not load")
		return store.Run{}, false
	}
	env := cfg.Environment(d.env.Name)
	if env == nil || sameHosts(applied, env) {
		return store.Run{}, false
	}
	log.Info().Int("hosts", len(env.Hosts)).Msg("inventory changed")
	tg := target{rev: d.rev, env: env, decision: d.decision}
	st.desired = &tg
	return r.rollout(ctx, st, tg, status.TriggerInventory), true
}

// sameHosts reports whether two configurations declare the same hosts,
// rendered alike (names, addresses, variables, resources, checks).
func sameHosts(a, b *config.Environment) bool {
	x, err1 := json.Marshal(a.Hosts)
	y, err2 := json.Marshal(b.Hosts)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
