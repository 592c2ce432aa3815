package config

// Resource is one declared resource, resolved for one host: its kind, its
// name (the value of the kind key, e.g. the path of a file), the typed spec
// of its kind, and the fields every kind shares.
//
// In YAML a resource is a mapping whose first key is its kind:
//
//   - file: /etc/app/app.env
//     source: files/app.env
//     mode: "0640"
//     notify: [service:app]
//
// For kinds whose value is a mapping (route, firewall) the name is derived
// from the mapping (see each spec's doc comment).
type Resource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Spec is a pointer to the kind's spec struct, made by its row of the
	// kinds table (LoadOptions.Kinds): *targets.FileSpec for "file", ...
	Spec any `json:"spec"`
	// Requires lists identities ("kind:name") applied before this one.
	Requires []string `json:"requires,omitempty"`
	// Notify lists identities refreshed (a service restarted or reloaded)
	// when this resource changed.
	Notify []string `json:"notify,omitempty"`
	// Drift overrides the environment's drift mode for this resource.
	Drift DriftMode `json:"drift,omitempty"`
	Pos   Position  `json:"-"`
	// Undecrypted is set by a load that does not decrypt (validate
	// without identities, a pull request's preview) on a resource whose
	// content comes from an encrypted file or from a template of a host
	// whose variables are encrypted: its content is unknown, so it is
	// secret, plans say it was not evaluated, and it is never applied.
	Undecrypted bool `json:"-"`
}

// ID is the resource's identity, unique within a host: "file:/etc/app.conf".
func (r Resource) ID() string { return r.Kind + ":" + r.Name }

// IsSecret reports whether the resource's content must never leave the
// daemon: a file, an env file or a service's unit marked `secret: true`,
// decrypted from the repository, or rendered with a decrypted value (the
// loader marks those). Its diffs are masked wherever they go and the
// rollback journal keeps it encrypted.
func (r Resource) IsSecret() bool {
	if r.Undecrypted {
		return true
	}
	s, ok := r.Spec.(SecretSpec)
	return ok && s.IsSecret()
}

// State values shared by several kinds.
const (
	Present = "present"
	Absent  = "absent"
)

// AddressSpec puts the address named by the resource (CIDR form, e.g.
// 10.0.0.5/24) on an interface.
type AddressSpec struct {
	Interface string `yaml:"interface" json:"interface"`
	State     string `yaml:"state" json:"state,omitempty"`
}

// RouteSpec is a route; in YAML `route: {to: 10.1.0.0/16, via: 10.0.0.1}`.
// Its name is To.
type RouteSpec struct {
	To    string `yaml:"to" json:"to"`
	Via   string `yaml:"via" json:"via,omitempty"`
	Dev   string `yaml:"dev" json:"dev,omitempty"`
	State string `yaml:"state" json:"state,omitempty"`
}

// FirewallSpec adds rules to the host's nftables table owned by driftless
// (table inet driftless). In YAML `firewall: {allow: [tcp/8080], from: 10.0.0.0/24}`,
// with an optional `name` (the resource name; default "default"). All firewall
// resources of a host are rendered into the one table, replaced atomically.
type FirewallSpec struct {
	Name   string   `yaml:"name" json:"name,omitempty"`
	Allow  []string `yaml:"allow" json:"allow,omitempty"`
	Deny   []string `yaml:"deny" json:"deny,omitempty"`
	From   string   `yaml:"from" json:"from,omitempty"`
	Policy string   `yaml:"policy" json:"policy,omitempty"` // accept (default) | drop, for the input chain
}
