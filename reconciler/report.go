package reconciler

import (
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// gateInfo describes env's gates (nil when it has none).
func gateInfo(env *config.Environment) *status.GateInfo {
	if env == nil || !env.Gated() {
		return nil
	}
	g := &status.GateInfo{Windows: len(env.Windows) > 0}
	if p := env.Promote; p != nil {
		g.PromoteFrom, g.Soak = append([]string(nil), p.From...), p.Soak.D()
	}
	if a := env.Approval; a != nil && a.Required {
		g.Approval, g.Approvers = true, append([]string(nil), a.Approvers...)
	}
	return g
}
