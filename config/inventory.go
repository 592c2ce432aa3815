package config

import (
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Inventory gives an environment hosts besides those it lists: a command
// printing Ansible's dynamic inventory JSON, or an HTTP endpoint answering
// it. It runs only for a trusted revision (LoadOptions.Inventory decides),
// at each revision and every Interval.
type Inventory struct {
	// Command runs on the daemon's machine with sh -c.
	Command string `yaml:"command" json:"command,omitempty"`
	// URL is fetched with GET.
	URL string `yaml:"url" json:"url,omitempty"`
	// Interval is how often the inventory is read again (0: 5 minutes).
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	Pos      Position `yaml:"-" json:"-"`
}

// InventoryHost is one host an inventory gives. Its roles are the groups
// it is in; only those naming a role the environment can use are kept.
type InventoryHost struct {
	Name      string
	Address   string
	User      string
	Port      int
	Transport string
	Roles     []string
	Vars      map[string]any
}

// InventorySource gives the hosts of an environment's inventory: by
// running it (a trusted revision) or from its last result (an untrusted
// one, which never runs anything).
type InventorySource interface {
	Hosts(env string, inv *Inventory) ([]InventoryHost, error)
}

// decodeInventory decodes `inventory: {command | url, interval}`.
func decodeInventory(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	inv := &Inventory{Pos: d.pos(n)}
	keys := d.decodeStruct(n, reflect.ValueOf(inv).Elem(), "inventory", nil)
	if n.Kind != yaml.MappingNode {
		return
	}
	if (strings.TrimSpace(inv.Command) == "") == (inv.URL == "") {
		d.errorf(n, "inventory: needs exactly one of command or url")
		return
	}
	if inv.URL != "" && !strings.HasPrefix(inv.URL, "http://") && !strings.HasPrefix(inv.URL, "https://") {
		d.errorf(keys["url"], "inventory.url: %q is not an http(s) URL", inv.URL)
	}
	if inv.Interval < 0 {
		d.errorf(keys["interval"], "inventory.interval: must not be negative")
	}
	env.Inventory = inv
}

// addInventoryHosts appends the hosts of decl's inventory (when it has one
// and the load has a source) to its declared hosts, keeping of each host's
// groups those that name a role the environment can use.
func (l *loader) addInventoryHosts(decl *envDecl) {
	inv := decl.env.Inventory
	if inv == nil || l.opts.Inventory == nil || decl.env.Name == "" {
		return
	}
	hosts, err := l.opts.Inventory.Hosts(decl.env.Name, inv)
	if err != nil {
		l.errs.add(inv.Pos, "inventory: %v", err)
		return
	}
	for _, ih := range hosts {
		decl.hosts = append(decl.hosts, l.inventoryHost(decl, ih, inv.Pos))
	}
}

// inventoryHost is the declaration of a host an inventory (or a
// provisioner) gives, keeping of its groups those that name a role the
// environment can use.
func (l *loader) inventoryHost(decl *envDecl, ih InventoryHost, pos Position) *hostDecl {
	// As in Ansible, a host without ansible_host is reached by its
	// inventory name: only ansible_connection: local makes it local,
	// never a missing address.
	addr := ih.Address
	if addr == "" && ih.Transport != "local" {
		addr = ih.Name
	}
	h := &Host{Name: ih.Name, Address: addr, User: ih.User, Port: ih.Port, Transport: ih.Transport, Vars: ih.Vars, Pos: pos}
	for _, r := range ih.Roles {
		if decl.roles[r] != nil || l.roles[r] != nil {
			h.Roles = append(h.Roles, r)
		}
	}
	return &hostDecl{host: h}
}
