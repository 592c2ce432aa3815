package config

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"go.yaml.in/yaml/v3"
)

// The daemon's defaults, applied by LoadDaemon to what the file leaves out.
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultStateDir = "/var/lib/driftless"
	// DefaultAgentStateDir is state_dir for `driftless agent --pull`
	// (LoadAgent): the StateDirectory of systemd/driftless-agent.service,
	// apart from a daemon's store on the same machine.
	DefaultAgentStateDir    = "/var/lib/driftless-agent"
	DefaultDriftInterval    = 5 * time.Minute
	DefaultGitInterval      = time.Minute
	DefaultLocalInterval    = 30 * time.Second
	DefaultSSHParallelism   = kit.HostParallelism
	DefaultSSHTimeout       = 30 * time.Second
	DefaultConfirmTimeout   = 60 * time.Second
	DefaultKeepaliveSeconds = 15
	DefaultReplayWindow     = 24 * time.Hour
	DefaultBranch           = "main"
)

// LoadDaemon reads driftless.yaml strictly, applies the defaults and
// validates it. Errors are an ErrorList with positions in path. Relative
// file paths in it are taken relative to the file's own folder.
func LoadDaemon(path string) (*Daemon, error) { return loadDaemon(path, DefaultStateDir) }

// LoadAgent is LoadDaemon for the pull agent, whose state_dir defaults to
// DefaultAgentStateDir.
func LoadAgent(path string) (*Daemon, error) { return loadDaemon(path, DefaultAgentStateDir) }

func loadDaemon(path, stateDir string) (*Daemon, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read daemon config: %w", err)
	}
	cfg, err := parseDaemon(path, data, stateDir)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("resolve the folder of daemon config %s: %w", path, err)
	}
	resolvePaths(cfg, dir)
	return cfg, nil
}

// ParseDaemon is LoadDaemon on bytes already read; file names them in errors.
func ParseDaemon(file string, data []byte) (*Daemon, error) {
	return parseDaemon(file, data, DefaultStateDir)
}

// parseDaemon is ParseDaemon with stateDir as state_dir's default.
func parseDaemon(file string, data []byte, stateDir string) (*Daemon, error) {
	var e errs
	root := parseYAML(file, data, &e)
	if root == nil {
		return nil, e.result()
	}
	d := newDecoder(file, &e)
	cfg := &Daemon{}
	var sourceNodes []*yaml.Node
	keys := d.decodeStruct(root, reflect.ValueOf(cfg).Elem(), "the daemon configuration", map[string]handler{
		"sources": func(k, v *yaml.Node) {
			d.decodeValue(v, reflect.ValueOf(&cfg.Sources).Elem(), "sources")
			if v = d.visit(v); v != nil && v.Kind == yaml.SequenceNode {
				sourceNodes = v.Content
			}
		},
		"agent": func(k, v *yaml.Node) {
			d.decodeStruct(v, reflect.ValueOf(&cfg.Agent).Elem(), "agent", map[string]handler{
				// The agent used to be optional; it is the one way to
				// reach an SSH host now.
				"enabled": func(k, _ *yaml.Node) {
					d.errorf(k, "agent enabled: removed: driftless always reaches SSH hosts through its agent; delete this key")
				},
			})
		},
	})
	if root.Kind != yaml.MappingNode {
		return nil, e.result()
	}
	at := func(key string) *yaml.Node {
		if n, ok := keys[key]; ok && n != nil {
			return n
		}
		return root
	}
	applyDaemonDefaults(cfg, stateDir)
	if err := checkHostPort(cfg.Listen); err != nil {
		d.errorf(at("listen"), "listen: %v", err)
	}
	if cfg.SSH.Parallelism < 0 {
		d.errorf(at("ssh"), "ssh parallelism: must not be negative")
	}
	if cfg.SSH.KeepaliveSeconds < 0 {
		d.errorf(at("ssh"), "ssh keepalive_seconds: must not be negative")
	}
	validateSources(d, cfg, sourceNodes, at("sources"))
	validateFeedback(d, cfg, at("feedback"))
	validateNotify(d, cfg, at("notify"))
	validateAddresses(d, cfg, root)
	validateHTTP(d, cfg.HTTP, at("http"))
	validateTokens(d, cfg.API.Tokens, at("api"))
	validateCluster(d, cfg.Cluster, root)
	validatePull(d, cfg.Pull, at("pull"))
	if cfg.Templates.MaxOutputBytes < 0 {
		d.errorf(at("templates"), "templates max_output_bytes: must not be negative")
	}
	if err := e.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validatePull checks the pull section: a host name as environments
// write it, and a report needs an http(s) URL and a token.
func validatePull(d *decoder, p Pull, at *yaml.Node) {
	if p.Host != "" && !nameRe.MatchString(p.Host) {
		d.errorf(at, "pull host: %q is not a valid host name (letters, digits, '.', '_' and '-')", p.Host)
	}
	r := p.Report
	if r == nil {
		return
	}
	if err := CheckURL(r.URL, "http", "https"); err != nil {
		d.errorf(at, "pull report: url: %v (the central daemon's address)", err)
	}
	if r.Token.IsZero() {
		d.errorf(at, "pull report: needs a token (file or env) with the report scope on the central daemon")
	}
	if r.Interval < 0 {
		d.errorf(at, "pull report: interval must not be negative")
	}
}

// applyDaemonDefaults fills every setting the file left out; stateDir is
// state_dir's default.
func applyDaemonDefaults(cfg *Daemon, stateDir string) {
	setStr := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	setDur := func(v *Duration, def time.Duration) {
		if *v == 0 {
			*v = Duration(def)
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setStr(&cfg.Listen, DefaultListen)
	setStr(&cfg.StateDir, stateDir)
	setDur(&cfg.DriftInterval, DefaultDriftInterval)
	setInt(&cfg.SSH.Parallelism, DefaultSSHParallelism)
	setDur(&cfg.SSH.Timeout, DefaultSSHTimeout)
	setDur(&cfg.SSH.ConfirmTimeout, DefaultConfirmTimeout)
	setInt(&cfg.SSH.KeepaliveSeconds, DefaultKeepaliveSeconds)
	setDur(&cfg.Webhooks.Replay, DefaultReplayWindow)
	if cfg.Pull.Report != nil {
		setDur(&cfg.Pull.Report.Interval, DefaultReportInterval)
	}
	httpDefaults(&cfg.HTTP, setDur, setInt)
	setInt(&cfg.Templates.MaxOutputBytes, DefaultTemplateMaxBytes)
	setDur(&cfg.Templates.Timeout, DefaultTemplateTimeout)
	clusterDefaults(cfg.Cluster)
	for i := range cfg.Sources {
		if g := cfg.Sources[i].Git; g != nil {
			setDur(&g.Interval, DefaultGitInterval)
			if g.Tag == "" {
				setStr(&g.Branch, DefaultBranch)
			}
		}
		if lc := cfg.Sources[i].Local; lc != nil {
			setDur(&lc.Interval, DefaultLocalInterval)
		}
	}
}

// validateSources checks each source: a name, unique; exactly one of git
// or local; a git URL; branch and tag exclusive; a path inside the repository.
func validateSources(d *decoder, cfg *Daemon, nodes []*yaml.Node, def *yaml.Node) {
	seen := map[string]int{}
	for i, s := range cfg.Sources {
		at := def
		if i < len(nodes) {
			at = nodes[i]
		}
		label := s.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		switch first, dup := seen[s.Name]; {
		case s.Name == "":
			d.errorf(at, "a source needs a name")
		case !nameRe.MatchString(s.Name):
			d.errorf(at, "source name %q may hold only letters, digits, '.', '_' and '-'", s.Name)
		case dup:
			d.errorf(at, "source %q is already declared at line %d", s.Name, first)
		default:
			seen[s.Name] = at.Line
		}
		if (s.Git == nil) == (s.Local == nil) {
			d.errorf(at, "source %s: a source needs exactly one of git or local", label)
			continue
		}
		if s.Local != nil && s.Local.Path == "" {
			d.errorf(at, "source %s: local needs a path", label)
		}
		if g := s.Git; g != nil {
			if g.URL == "" {
				d.errorf(at, "source %s: git needs a url", label)
			}
			if g.Tag != "" && g.Branch != "" {
				d.errorf(at, "source %s: git takes a branch or a tag, not both", label)
			}
			if g.Path != "" {
				clean := path.Clean(g.Path)
				if path.IsAbs(g.Path) || clean == ".." || strings.HasPrefix(clean, "../") {
					d.errorf(at, "source %s: path %q must be relative and stay inside the repository", label, g.Path)
				}
			}
			if !g.Token.IsZero() && !g.Password.IsZero() {
				d.errorf(at, "source %s: git takes a token or a password, not both", label)
			}
		}
	}
}

// validateFeedback checks each Git host API has a repository and a token.
func validateFeedback(d *decoder, cfg *Daemon, at *yaml.Node) {
	for name, h := range map[string]*HostAPI{"github": cfg.Feedback.GitHub, "gitea": cfg.Feedback.Gitea, "gitlab": cfg.Feedback.GitLab} {
		if h == nil {
			continue
		}
		if h.Repository == "" {
			d.errorf(at, "feedback %s: needs a repository", name)
		}
		if h.Token.IsZero() {
			d.errorf(at, "feedback %s: needs a token", name)
		}
		if h.Source != "" {
			i := slices.IndexFunc(cfg.Sources, func(s SourceConfig) bool { return s.Name == h.Source })
			switch {
			case i < 0:
				d.errorf(at, "feedback %s: source %q is not declared in sources", name, h.Source)
			case cfg.Sources[i].Git == nil:
				d.errorf(at, "feedback %s: source %q is not a Git source", name, h.Source)
			}
		}
	}
}

// validateNotify checks each notice target is complete.
func validateNotify(d *decoder, cfg *Daemon, at *yaml.Node) {
	for kind, hooks := range map[string][]NotifyWebhook{"webhooks": cfg.Notify.Webhooks, "slack": cfg.Notify.Slack} {
		for i, w := range hooks {
			if (w.URL == "") == w.URLRef.IsZero() {
				d.errorf(at, "notify %s[%d]: needs exactly one of url or url_secret", kind, i)
			}
		}
	}
	if m := cfg.Notify.Email; m != nil && (m.Server == "" || m.From == "" || len(m.To) == 0) {
		d.errorf(at, "notify email: needs server, from and to")
	}
}

// validateTokens checks the scoped API tokens: a unique name, a hex
// SHA-256 and known scopes.
func validateTokens(d *decoder, tokens []APIToken, at *yaml.Node) {
	seen := map[string]bool{}
	for i, t := range tokens {
		switch {
		case !nameRe.MatchString(t.Name):
			d.errorf(at, "api tokens[%d]: name %q is not a valid name (letters, digits, '.', '_' and '-')", i, t.Name)
		case seen[t.Name]:
			d.errorf(at, "api tokens[%d]: name %q is used twice", i, t.Name)
		}
		seen[t.Name] = true
		if len(t.SHA256) != 64 || strings.Trim(strings.ToLower(t.SHA256), "0123456789abcdef") != "" {
			d.errorf(at, "api tokens[%d] (%s): sha256 must be the 64 hex digits of the token's SHA-256 (sha256sum), not the token", i, t.Name)
		}
		if len(t.Scopes) == 0 {
			d.errorf(at, "api tokens[%d] (%s): scopes is empty (sync, rollback, approve, report)", i, t.Name)
		}
		for _, s := range t.Scopes {
			if s != ScopeSync && s != ScopeRollback && s != ScopeApprove && s != ScopeReport {
				d.errorf(at, "api tokens[%d] (%s): scope %q is not one of sync, rollback, approve, report", i, t.Name, s)
			}
		}
	}
}
