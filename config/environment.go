package config

import "fmt"

// DriftMode says what the drift loop does with a difference it finds.
type DriftMode string

// The drift modes. The zero value inherits from the enclosing level, and
// an environment that says nothing enforces.
const (
	DriftInherit DriftMode = ""
	DriftEnforce DriftMode = "enforce"
	DriftWarn    DriftMode = "warn"
	DriftIgnore  DriftMode = "ignore"
)

// Position is where something was declared.
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Revision is every environment declared by one revision of a repository,
// loaded and validated as a whole.
type Revision struct {
	Environments []*Environment
	// Undecrypted lists where an encrypted file is used that was not
	// decrypted because the load was asked not to (LoadOptions.SkipDecrypt).
	Undecrypted []Position `json:"Undecrypted,omitempty"`
}

// SecretValues is every value that came out of a decryption, on any host.
func (r *Revision) SecretValues() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range r.Environments {
		for _, h := range e.Hosts {
			for _, v := range h.SecretValues {
				if !seen[v] {
					seen[v] = true
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// Environment returns the environment with that name, or nil.
func (r *Revision) Environment(name string) *Environment {
	for _, e := range r.Environments {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Environment is one environments/*.yaml file, with roles expanded and
// templates rendered for each host.
type Environment struct {
	Name    string    `yaml:"environment" json:"environment"`
	Drift   DriftMode `yaml:"drift" json:"drift,omitempty"`
	Prune   bool      `yaml:"prune" json:"prune,omitempty"`
	Hosts   []*Host   `yaml:"hosts" json:"hosts"`
	Rollout Rollout   `yaml:"rollout" json:"rollout,omitempty"`
	Verify  []Check   `yaml:"verify" json:"verify,omitempty"`
	// DriftInterval overrides the daemon's drift interval for this environment.
	DriftInterval Duration `yaml:"drift_interval" json:"drift_interval,omitempty"`
	// Promote, Approval and Windows are the gates a revision passes, in
	// that order, before it is applied (see gates.go and window.go).
	Promote  *Promote  `yaml:"promote" json:"promote,omitempty"`
	Approval *Approval `yaml:"approval" json:"approval,omitempty"`
	Windows  []Window  `yaml:"windows" json:"windows,omitempty"`
	// Traffic takes each host out of its load balancer around its apply.
	Traffic *Traffic `yaml:"traffic" json:"traffic,omitempty"`
	// Inventory gives hosts besides those listed under hosts.
	Inventory *Inventory `yaml:"inventory" json:"inventory,omitempty"`
	// Preview makes the environment a template: it is not rolled out
	// itself; each pull request gets an environment NAME-pr-N made from it
	// (provision.go).
	Preview bool `yaml:"preview" json:"preview,omitempty"`
	// PreviewTTL is how long a preview lives after its newest commit
	// arrived (0: DefaultPreviewTTL).
	PreviewTTL Duration `yaml:"preview_ttl" json:"preview_ttl,omitempty"`
	// Provision creates and destroys a preview's hosts.
	Provision *Provision `yaml:"provision" json:"provision,omitempty"`
	Pos       Position   `yaml:"-" json:"-"`
}

// Host is one machine of an environment.
type Host struct {
	Name string `yaml:"name" json:"name"`
	// Address is what the transport connects to; empty or "local" means this machine.
	Address string `yaml:"address" json:"address,omitempty"`
	// Transport is "ssh" (the default when Address is set) or "local".
	Transport string `yaml:"transport" json:"transport,omitempty"`
	// Root, for the local transport, is a folder every managed path is placed under.
	Root    string         `yaml:"root" json:"root,omitempty"`
	Port    int            `yaml:"port" json:"port,omitempty"`
	User    string         `yaml:"user" json:"user,omitempty"`
	Sudo    bool           `yaml:"sudo" json:"sudo,omitempty"`
	HostKey string         `yaml:"host_key" json:"host_key,omitempty"`
	Roles   []string       `yaml:"roles" json:"roles,omitempty"`
	Vars    map[string]any `yaml:"vars" json:"vars,omitempty"`
	// VarsFiles are repository files (YAML or JSON mappings, SOPS-encrypted
	// or not) whose variables the host gets; its own vars win.
	VarsFiles []string `yaml:"vars_files" json:"vars_files,omitempty"`
	// SecretValues is filled by the loader: every string that came out of
	// a decryption for this host. It never leaves the daemon: reports,
	// logs and the store hide these values.
	SecretValues []string          `yaml:"-" json:"-"`
	Labels       map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Resources is filled by the loader: the host's roles expanded in order,
	// then the host's own resources, each rendered with the host's variables.
	Resources []Resource `yaml:"resources" json:"resources,omitempty"`
	// Checks is filled by the loader: the environment's verify steps rendered for this host.
	Checks []Check  `yaml:"-" json:"checks,omitempty"`
	Pos    Position `yaml:"-" json:"-"`
}

// Rollout says how changes are spread over hosts.
type Rollout struct {
	// Canary is the size of the first batch (0: no canary batch).
	Canary int `yaml:"canary" json:"canary,omitempty"`
	// Batch is the size of each following batch (0: 1).
	Batch int `yaml:"batch" json:"batch,omitempty"`
	// Parallelism bounds how many hosts of a batch are worked on at once (0: the batch size).
	Parallelism int `yaml:"parallelism" json:"parallelism,omitempty"`
	// MaxFailed is how many hosts may fail before the rollout stops and rolls back.
	MaxFailed int `yaml:"max_failed" json:"max_failed,omitempty"`
}

// Check is one verification step run after each batch. Exactly one of
// HTTP, TCP, Command, Prometheus and JUnit is set. String fields are templates
// rendered per host with .Host and .Vars.
type Check struct {
	Name       string `yaml:"name" json:"name,omitempty"`
	HTTP       string `yaml:"http" json:"http,omitempty"`
	TCP        string `yaml:"tcp" json:"tcp,omitempty"`
	Command    string `yaml:"command" json:"command,omitempty"`
	Prometheus string `yaml:"prometheus" json:"prometheus,omitempty"`
	// JUnit is a test command whose JUnit XML report decides the check:
	// it passes when the report counts at most MaxFailures failed or
	// errored tests. Report is where the command writes the report (on
	// the same machine); empty, the command's standard output is the report.
	JUnit       string `yaml:"junit" json:"junit,omitempty"`
	Report      string `yaml:"report" json:"report,omitempty"`
	MaxFailures int    `yaml:"max_failures" json:"max_failures,omitempty"`
	// On, for a command or junit check, is "host" (the default) or "local".
	On           string `yaml:"on" json:"on,omitempty"`
	ExpectStatus int    `yaml:"expect_status" json:"expect_status,omitempty"`
	ExpectBody   string `yaml:"expect_body" json:"expect_body,omitempty"`
	// Server, Query, Op and Threshold describe a Prometheus check:
	// the query's first sample compared with the threshold (op: <, <=, >, >=, ==, !=).
	Server    string   `yaml:"server" json:"server,omitempty"`
	Op        string   `yaml:"op" json:"op,omitempty"`
	Threshold float64  `yaml:"threshold" json:"threshold,omitempty"`
	Timeout   Duration `yaml:"timeout" json:"timeout,omitempty"`
	Retries   int      `yaml:"retries" json:"retries,omitempty"`
	Interval  Duration `yaml:"interval" json:"interval,omitempty"`
	// Host is set by the loader: the checks are rendered per host.
	Host string   `yaml:"-" json:"-"`
	Pos  Position `yaml:"-" json:"-"`
}

// Kind returns which kind of check this is.
func (c Check) Kind() string {
	switch {
	case c.HTTP != "":
		return "http"
	case c.TCP != "":
		return "tcp"
	case c.Command != "":
		return "command"
	case c.Prometheus != "":
		return "prometheus"
	case c.JUnit != "":
		return "junit"
	}
	return ""
}
