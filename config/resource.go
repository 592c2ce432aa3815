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
