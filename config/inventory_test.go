package config_test

import (
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// fixedInventory answers every environment with the same hosts.
type fixedInventory []config.InventoryHost

func (f fixedInventory) Hosts(string, *config.Inventory) ([]config.InventoryHost, error) {
	return f, nil
}

// TestInventoryHostsAddress: an inventory host without an address is
// reached over SSH by its name, as Ansible does; only a declared local
// connection makes a host local, so an inventory's output cannot turn a
// host into the daemon's own machine by leaving its address out.
func TestInventoryHostsAddress(t *testing.T) {
	dir := writeRepo(t, map[string]string{"environments/e.yaml": `environment: e
inventory: {command: ./hosts.sh}
roles:
  web:
    - file: /etc/motd
      content: hi
`})
	inv := fixedInventory{{Name: "web-9.example", Roles: []string{"web"}}, {Name: "box", Transport: "local"}}
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*config.Host{}
	for _, h := range rev.Environments[0].Hosts {
		got[h.Name] = h
	}
	if h := got["web-9.example"]; h == nil || h.Transport != "ssh" || h.Address != "web-9.example" {
		t.Errorf("host without address = %+v, want ssh to its name", h)
	}
	if h := got["box"]; h == nil || h.Transport != "local" {
		t.Errorf("host with a local connection = %+v, want local", h)
	}
}
