package reconciler

import (
	"context"
	"errors"
	"fmt"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// markerService is a small real driver for kind "service" used where no
// systemd runs: the "unit" is its unit file in the host's sandbox root,
// observed as the service kind observes one there (its native query
// reads the root's unit file), and a refresh appends "restart <name>" to
// /var/log/refresh.log on the host, so a test sees which services were
// refreshed, how often and in which order.
type markerService struct{}

var (
	_ targets.Driver    = (*markerService)(nil)
	_ targets.Refresher = (*markerService)(nil)
)

func (*markerService) Kind() string { return "service" }

// NewSpec and Validate are the service kind's own.
func (*markerService) NewSpec() any { return (&targets.ServiceDriver{}).NewSpec() }

func (*markerService) Validate(name string, spec any) []config.Problem {
	return (&targets.ServiceDriver{}).Validate(name, spec)
}

// unitPath is where the service kind looks for r's unit file.
func unitPath(r config.Resource) string { return "/etc/systemd/system/" + r.Name + ".service" }

// Parse reads the service kind's observation: the unit is present when
// its unit file is.
func (*markerService) Parse(r config.Resource, out []byte) (targets.State, error) {
	st, err := (&targets.ServiceDriver{}).Parse(r, out)
	if err != nil || st.Fields["unitfile"] != "1" {
		return targets.State{}, err
	}
	return targets.State{Present: true, Content: st.Content}, nil
}

func unitOf(r config.Resource) string {
	if s, ok := r.Spec.(*targets.ServiceSpec); ok {
		return s.Unit
	}
	return ""
}

func (*markerService) Diff(r config.Resource, observed targets.State) targets.Change {
	c := targets.Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: targets.NoChange}
	switch {
	case !observed.Present:
		c.Action, c.Diff = targets.Create, "unit: absent -> present"
	case string(observed.Content) != unitOf(r):
		c.Action, c.Diff = targets.Update, "unit: changed"
	}
	return c
}

func (*markerService) write(ctx context.Context, t targets.Transport, r config.Resource, content []byte) error {
	res, err := t.Run(ctx, "mkdir -p "+targets.ShellQuote(t.Root()+"/etc/systemd/system"), nil)
	if err != nil || res.Exit != 0 {
		return fmt.Errorf("mkdir for %s: %v %s", r.ID(), err, res.Stderr)
	}
	return t.WriteFile(ctx, unitPath(r), content, 0o644)
}

func (s *markerService) Apply(ctx context.Context, t targets.Transport, r config.Resource, _ targets.State) error {
	return s.write(ctx, t, r, []byte(unitOf(r)))
}

func (s *markerService) Restore(ctx context.Context, t targets.Transport, r config.Resource, snap targets.State) error {
	if snap.Present {
		return s.write(ctx, t, r, snap.Content)
	}
	res, err := t.Run(ctx, "rm -f "+targets.ShellQuote(t.Root()+unitPath(r)), nil)
	if err != nil || res.Exit != 0 {
		return errors.Join(err, fmt.Errorf("remove unit of %s: %s", r.ID(), res.Stderr))
	}
	return nil
}

func (*markerService) Refresh(ctx context.Context, t targets.Transport, r config.Resource) error {
	log := targets.ShellQuote(t.Root() + "/var/log")
	res, err := t.Run(ctx, "mkdir -p "+log+" && echo "+targets.ShellQuote("restart "+r.Name)+" >> "+log+"/refresh.log", nil)
	if err != nil || res.Exit != 0 {
		return fmt.Errorf("refresh %s: %v %s", r.ID(), err, res.Stderr)
	}
	return nil
}

// panicky is a driver for kind "sysctl" whose Apply panics, to show that
// a broken driver fails its host instead of the daemon.
type panicky struct{ markerService }

func (*panicky) Kind() string { return "sysctl" }

// Parse says the parameter is absent, so that Apply runs.
func (*panicky) Parse(config.Resource, []byte) (targets.State, error) { return targets.State{}, nil }

func (*panicky) Apply(context.Context, targets.Transport, config.Resource, targets.State) error {
	panic("driver bug")
}
