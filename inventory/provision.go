package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/driftless/driftless/config"
)

// DefaultProvisionTimeout bounds one run of a provisioner's command.
const DefaultProvisionTimeout = 10 * time.Minute

// Provisioner runs a preview template's provision commands on the daemon's
// machine: create prints the hosts (Ansible dynamic inventory JSON, read
// by Parse), destroy receives that output on its standard input. Both get
// the variables they are called with (the environment's name, the pull
// request's number and commit) in their environment.
type Provisioner struct{}

// Create runs p.Create and returns what it printed and the hosts it names.
func (Provisioner) Create(ctx context.Context, p *config.Provision, vars map[string]string) ([]byte, []config.InventoryHost, error) {
	out, err := runProvision(ctx, p, p.Create, vars, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("provision create: %w", err)
	}
	hosts, err := Parse(out)
	if err != nil {
		return nil, nil, fmt.Errorf("provision create: %w", err)
	}
	return out, hosts, nil
}

// Destroy runs p.Destroy with created (what Create printed) on its input.
func (Provisioner) Destroy(ctx context.Context, p *config.Provision, vars map[string]string, created []byte) error {
	if _, err := runProvision(ctx, p, p.Destroy, vars, created); err != nil {
		return fmt.Errorf("provision destroy: %w", err)
	}
	return nil
}

func runProvision(ctx context.Context, p *config.Provision, command string, vars map[string]string, stdin []byte) ([]byte, error) {
	timeout := p.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultProvisionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return runCommand(ctx, command, vars, stdin)
}
