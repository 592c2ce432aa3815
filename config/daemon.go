// Package config reads driftless's own configuration (driftless.yaml) and the
// declared environments of a revision (environments/*.yaml). It validates
// everything strictly and reports every error with its file, line and column.
// It imports nothing else of driftless.
package config

import "time"

// Daemon is the daemon's own configuration file, driftless.yaml.
// Secrets are only ever referenced (file or environment variable), never inline.
type Daemon struct {
	// Listen is the HTTP address for hooks, metrics, API and the status page.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// StateDir holds the bbolt state store and source checkouts.
	StateDir string `yaml:"state_dir" json:"state_dir,omitempty"`
	// DriftInterval is how often every environment is re-observed.
	DriftInterval Duration `yaml:"drift_interval" json:"drift_interval,omitempty"`
	// ExternalURL is the base URL of the status page, used in links sent to Git hosts.
	ExternalURL string         `yaml:"external_url" json:"external_url,omitempty"`
	Sources     []SourceConfig `yaml:"sources" json:"sources"`
	Webhooks    Webhooks       `yaml:"webhooks" json:"webhooks,omitempty"`
	API         API            `yaml:"api" json:"api,omitempty"`
	SSH         SSH            `yaml:"ssh" json:"ssh,omitempty"`
	Feedback    Feedback       `yaml:"feedback" json:"feedback,omitempty"`
	Notify      Notify         `yaml:"notify" json:"notify,omitempty"`
	HTTP        HTTP           `yaml:"http" json:"http,omitempty"`
	Templates   Templates      `yaml:"templates" json:"templates,omitempty"`
	Secrets     Secrets        `yaml:"secrets" json:"secrets,omitempty"`
	// Agent is the driftless agent through which every SSH host is
	// reached (the daemon's own binary, copied to each host and started
	// over SSH).
	Agent Agent `yaml:"agent" json:"agent,omitzero"`
	// Pull is read by `driftless agent --pull` only: the host it runs on
	// and the central daemon it reports to.
	Pull Pull `yaml:"pull" json:"pull,omitzero"`
	// Cluster, when set, keeps the state in etcd and shares the
	// environments with other replicas (cluster.go).
	Cluster *Cluster `yaml:"cluster" json:"cluster,omitempty"`
}

// Secrets says how the daemon decrypts the secrets of the declared
// repositories (SOPS files and age files).
type Secrets struct {
	// AgeKeyFiles are age identity files (as age-keygen writes them).
	AgeKeyFiles []string `yaml:"age_key_files" json:"age_key_files,omitempty"`
}

// Templates bounds the evaluation of one repository template for one host.
type Templates struct {
	// MaxOutputBytes caps what one evaluation writes.
	MaxOutputBytes int `yaml:"max_output_bytes" json:"max_output_bytes,omitempty"`
	// Timeout caps how long one evaluation runs.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Secret names where a secret lives: a file or an environment variable.
type Secret struct {
	File string `yaml:"file" json:"file,omitempty"`
	Env  string `yaml:"env" json:"env,omitempty"`
}

// IsZero reports whether no secret is configured.
func (s Secret) IsZero() bool { return s.File == "" && s.Env == "" }

// SourceConfig declares one source of revisions: a Git repository or a local folder.
type SourceConfig struct {
	Name  string     `yaml:"name" json:"name"`
	Git   *GitSource `yaml:"git" json:"git,omitempty"`
	Local *Local     `yaml:"local" json:"local,omitempty"`
}

// GitSource is a Git repository followed on a branch or a tag.
type GitSource struct {
	URL      string   `yaml:"url" json:"url"`
	Branch   string   `yaml:"branch" json:"branch,omitempty"`
	Tag      string   `yaml:"tag" json:"tag,omitempty"`
	Path     string   `yaml:"path" json:"path,omitempty"`
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	// Auth for HTTPS: a token, or a username and password.
	Username string `yaml:"username" json:"username,omitempty"`
	Password Secret `yaml:"password" json:"password,omitempty"`
	Token    Secret `yaml:"token" json:"token,omitempty"`
	// Auth for SSH: a private key and the known_hosts file that checks the server.
	SSHKey     Secret `yaml:"ssh_key" json:"ssh_key,omitempty"`
	KnownHosts string `yaml:"known_hosts" json:"known_hosts,omitempty"`
	// SigningKeys is a file of armored OpenPGP public keys; when set, only
	// commits signed by one of them are accepted.
	SigningKeys string `yaml:"signing_keys" json:"signing_keys,omitempty"`
	// Previews says which pull requests are previewed.
	Previews Previews `yaml:"previews" json:"previews,omitempty"`
}

// Previews limits which pull requests get a preview (a plan observed on
// the hosts and reported). A pull request from a fork is previewed only
// when Forks is true; with Authors set, only pull requests opened by one
// of them are. The preview environments of pull requests opened by one of
// TrustedAuthors are rolled out without waiting for an approval.
type Previews struct {
	Forks          bool     `yaml:"forks" json:"forks,omitempty"`
	Authors        []string `yaml:"authors" json:"authors,omitempty"`
	TrustedAuthors []string `yaml:"trusted_authors" json:"trusted_authors,omitempty"`
}

// Local is a folder on the daemon's machine, watched for changes (development).
type Local struct {
	Path     string   `yaml:"path" json:"path"`
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
}

// Webhooks holds the secret of each webhook provider. A provider without a
// secret refuses every request.
type Webhooks struct {
	GitHub    Secret      `yaml:"github" json:"github,omitempty"`
	GitLab    Secret      `yaml:"gitlab" json:"gitlab,omitempty"`
	Gitea     Secret      `yaml:"gitea" json:"gitea,omitempty"`
	Bitbucket Secret      `yaml:"bitbucket" json:"bitbucket,omitempty"`
	Generic   GenericHook `yaml:"generic" json:"generic,omitempty"`
	Replay    Duration    `yaml:"replay_window" json:"replay_window,omitempty"`
}

// GenericHook is an HMAC-SHA256 of the body carried in a configured header.
type GenericHook struct {
	Secret Secret `yaml:"secret" json:"secret,omitempty"`
	Header string `yaml:"header" json:"header,omitempty"`
}

// API protects the mutating HTTP API with bearer tokens.
type API struct {
	// Token is a secret bearer token with the scopes sync and rollback.
	Token Secret `yaml:"token" json:"token,omitempty"`
	// Tokens are scoped tokens, each kept only as its SHA-256.
	Tokens []APIToken `yaml:"tokens" json:"tokens,omitempty"`
}

// The scopes of an API token.
const (
	ScopeSync     = "sync"
	ScopeRollback = "rollback"
	ScopeApprove  = "approve"
	// ScopeReport lets a pull-mode host report its own state.
	ScopeReport = "report"
)

// APIToken is a bearer token of the API with its scopes: what it may do
// (sync, rollback, approve). Only the SHA-256 of the token is configured,
// so the file never holds a usable token.
type APIToken struct {
	// Name says who holds the token; approvals record it.
	Name string `yaml:"name" json:"name"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string   `yaml:"sha256" json:"sha256"`
	Scopes []string `yaml:"scopes" json:"scopes"`
}

// SSH holds the defaults of the SSH transport.
type SSH struct {
	User             string   `yaml:"user" json:"user,omitempty"`
	KeyFile          string   `yaml:"key_file" json:"key_file,omitempty"`
	Agent            bool     `yaml:"agent" json:"agent,omitzero"`
	KnownHosts       string   `yaml:"known_hosts" json:"known_hosts,omitempty"`
	TrustOnFirstUse  bool     `yaml:"trust_on_first_use" json:"trust_on_first_use,omitempty"`
	Parallelism      int      `yaml:"parallelism" json:"parallelism,omitempty"`
	Timeout          Duration `yaml:"timeout" json:"timeout,omitempty"`
	ConfirmTimeout   Duration `yaml:"confirm_timeout" json:"confirm_timeout,omitempty"`
	KeepaliveSeconds int      `yaml:"keepalive_seconds" json:"keepalive_seconds,omitempty"`
}

// Agent is the driftless agent on SSH hosts (not ssh.agent, the SSH
// agent holding keys).
type Agent struct {
	// Binaries is a folder of agent binaries for hosts of another
	// architecture than the daemon's, named driftless-linux-ARCH
	// (driftless-linux-arm64); hosts of the daemon's own architecture get
	// the daemon's binary.
	Binaries string `yaml:"binaries" json:"binaries,omitempty"`
}

// Pull configures pull mode (`driftless agent --pull`): the agent follows
// the sources itself and applies what the environments declare for one
// host, this one.
type Pull struct {
	// Host is this host's name in the environments (empty: the machine's
	// hostname).
	Host string `yaml:"host" json:"host,omitempty"`
	// Report, when set, sends this host's state to a central daemon.
	Report *PullReport `yaml:"report" json:"report,omitempty"`
}

// PullReport is where a pull-mode host reports its state: the central
// daemon's base URL and an API token with the report scope.
type PullReport struct {
	URL      string   `yaml:"url" json:"url"`
	Token    Secret   `yaml:"token" json:"token"`
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
}

// DefaultReportInterval is how often a pull-mode host reports its state
// when pull.report.interval is not set.
const DefaultReportInterval = 30 * time.Second

// Feedback reports results back to Git hosts.
type Feedback struct {
	GitHub *HostAPI `yaml:"github" json:"github,omitempty"`
	Gitea  *HostAPI `yaml:"gitea" json:"gitea,omitempty"`
	GitLab *HostAPI `yaml:"gitlab" json:"gitlab,omitempty"`
	// FullDiffs names the environments whose previews show full diffs in
	// pull request comments and notifications. Elsewhere, and always for
	// files marked secret or not readable by everyone on the host, a
	// preview shows per resource only what changes: sizes, line counts and
	// a keyed hash, never live host content.
	FullDiffs []string `yaml:"full_diffs" json:"full_diffs,omitempty"`
}

// HostAPI is a Git host's REST API: base URL (for GitHub Enterprise, Gitea,
// self-hosted GitLab), the token, and the repository ("owner/name" or a GitLab project id).
type HostAPI struct {
	BaseURL     string `yaml:"base_url" json:"base_url,omitempty"`
	Token       Secret `yaml:"token" json:"token"`
	Repository  string `yaml:"repository" json:"repository"`
	Deployments bool   `yaml:"deployments" json:"deployments,omitempty"`
	// Source names the Git source whose revisions are reported (empty:
	// every source's), so that commits of one repository are never
	// reported to another, nor a local folder's tree hashes to a Git host.
	Source string `yaml:"source" json:"source,omitempty"`
}

// Notify sends deploy, rollback and drift notices.
type Notify struct {
	Webhooks []NotifyWebhook `yaml:"webhooks" json:"webhooks,omitempty"`
	Slack    []NotifyWebhook `yaml:"slack" json:"slack,omitempty"`
	Email    *Email          `yaml:"email" json:"email,omitempty"`
	// Reminder is how long a state already reported (drift left in place,
	// a failing or blocked environment) goes before it is reported again
	// (0: 24 hours). Changes of state are reported at once.
	Reminder Duration `yaml:"reminder" json:"reminder,omitempty"`
}

// NotifyWebhook is an URL to POST JSON to; the URL may itself be a secret.
type NotifyWebhook struct {
	URL    string   `yaml:"url" json:"url,omitempty"`
	URLRef Secret   `yaml:"url_secret" json:"url_secret,omitempty"`
	Events []string `yaml:"events" json:"events,omitempty"`
}

// Email sends notices over SMTP.
type Email struct {
	Server   string   `yaml:"server" json:"server"`
	From     string   `yaml:"from" json:"from"`
	To       []string `yaml:"to" json:"to"`
	Username string   `yaml:"username" json:"username,omitempty"`
	Password Secret   `yaml:"password" json:"password,omitempty"`
	StartTLS bool     `yaml:"starttls" json:"starttls,omitempty"`
	Events   []string `yaml:"events" json:"events,omitempty"`
}
