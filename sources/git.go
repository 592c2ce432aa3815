package sources

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
)

// Defaults of a Git source.
const (
	DefaultGitInterval  = time.Minute
	DefaultFetchTimeout = 2 * time.Minute
	defaultMinBackoff   = time.Second
	// defaultNotifySettle is how long after a fetch a webhook waits before
	// it makes another: every webhook of that time folds into one fetch.
	defaultNotifySettle = 200 * time.Millisecond
	// defaultTokenUser is the basic-auth user sent with a token when no
	// username is configured; GitHub, GitLab and Gitea accept any name.
	defaultTokenUser = "x-access-token"
)

// GitOptions configure a Git source.
type GitOptions struct {
	// Name is the source's name (logs, metrics, revisions).
	Name   string
	Config config.GitSource
	// Credentials are the resolved secrets (see ResolveGitCredentials).
	Credentials GitCredentials
	// Dir is this source's own folder under the state directory; it holds
	// the bare repository and the checkouts. Created when missing.
	Dir        string
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
	// Clock defaults to the system clock.
	Clock Clock
	// FetchTimeout bounds one fetch (DefaultFetchTimeout when zero).
	FetchTimeout time.Duration
	// MinBackoff is the first wait after a failure (one second when zero);
	// it doubles per failure up to the poll interval.
	MinBackoff time.Duration
	// CABundle is PEM certificates trusted for an https:// URL on top of
	// the system's roots: a Git server behind a private CA.
	CABundle []byte
}

// Git follows a branch or a tag of a Git repository with go-git: one bare
// cache repository (Dir/repo.git) fetched incrementally, and each new commit
// checked out into its own immutable folder, Dir/checkouts/<commit>, written
// beside and renamed into place. An unchanged commit produces nothing.
//
// What an operator sees:
//   - driftless_source_up is 1 after a good fetch and 0 after a failed one
//     (unreachable remote, bad credentials, unknown host key, the followed
//     branch deleted, a missing sub-path). A failing source keeps its last
//     good revision and retries with backoff capped at the poll interval.
//   - With signing_keys, a commit that is unsigned or signed by another key
//     is refused: logged once, counted in
//     driftless_source_verify_failures_total, never sent. The source stays
//     up (the remote works) and keeps its last good revision.
//   - Checkouts kept: the current one, the previous one, and the last two
//     sent (the reader may still use them); previews: two per pull request,
//     removed when it closes.
//   - After defaultMaxPacks fetches that brought something, the cache
//     repository is replaced by a fresh fetch (see compact).
//   - URLs and secrets are redacted from every log line and error.
type Git struct {
	name         string
	cfg          config.GitSource
	url          string
	key          repoKey
	dir          string
	log          zerolog.Logger
	m            *metrics
	clock        Clock
	auth         transport.AuthMethod
	caBundle     []byte
	redact       redact.Redactor
	keyring      string
	interval     time.Duration
	fetchTimeout time.Duration
	minBackoff   time.Duration
	maxPacks     int
	settle       time.Duration
	remoteRef    plumbing.ReferenceName
	localRef     plumbing.ReferenceName

	// wake has capacity one: Notify leaves at most one pending wake-up,
	// so bursts of webhooks coalesce into one fetch.
	wake chan struct{}
	mu   sync.Mutex
	req  request
	// head is the commit the followed ref pointed to after the last good
	// fetch ("" after a failed one): a webhook naming it has nothing new.
	head string

	// What follows is used only by the goroutine running Run.
	keep retention
	// wantMissing is set by a pass when the commit a webhook named was not
	// on the remote yet.
	wantMissing bool
	refused     map[string]bool
	previews    map[int][]string
	// tree is the hash of the current revision's tree (its path's): a
	// commit with the same tree changes nothing the source reads.
	tree string
	// unchanged are the commits already logged as changing nothing.
	unchanged map[string]bool
}

var _ Source = (*Git)(nil)

// NewGit checks the options and prepares the source; nothing is fetched
// before Run.
func NewGit(opts GitOptions) (*Git, error) {
	cfg := opts.Config
	if opts.Name == "" {
		return nil, errors.New("git source: a name is required")
	}
	g := &Git{
		name:         opts.Name,
		cfg:          cfg,
		url:          cfg.URL,
		dir:          opts.Dir,
		clock:        opts.Clock,
		interval:     cfg.Interval.D(),
		fetchTimeout: opts.FetchTimeout,
		minBackoff:   opts.MinBackoff,
		caBundle:     opts.CABundle,
		maxPacks:     defaultMaxPacks,
		settle:       defaultNotifySettle,
		wake:         make(chan struct{}, 1),
		refused:      map[string]bool{},
		unchanged:    map[string]bool{},
		previews:     map[int][]string{},
	}
	creds := opts.Credentials
	g.redact = redact.New(creds.Password, creds.Token, creds.SSHKeyPassphrase, urlPassword(cfg.URL))
	g.log = opts.Logger.With().Str("source", opts.Name).Logger()
	if g.clock == nil {
		g.clock = SystemClock{}
	}
	if g.interval <= 0 {
		g.interval = DefaultGitInterval
	}
	if g.fetchTimeout <= 0 {
		g.fetchTimeout = DefaultFetchTimeout
	}
	if g.minBackoff <= 0 {
		g.minBackoff = defaultMinBackoff
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("git source %s: url is required", opts.Name)
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("git source %s: a work folder is required", opts.Name)
	}
	switch {
	case cfg.Branch != "" && cfg.Tag != "":
		return nil, fmt.Errorf("git source %s: branch and tag are exclusive", opts.Name)
	case cfg.Tag != "":
		g.remoteRef = plumbing.NewTagReferenceName(cfg.Tag)
		g.localRef = g.remoteRef
	default:
		branch := cfg.Branch
		if branch == "" {
			branch = "main"
		}
		g.remoteRef = plumbing.NewBranchReferenceName(branch)
		g.localRef = plumbing.NewRemoteReferenceName("origin", branch)
	}
	if p := filepath.ToSlash(filepath.Clean(cfg.Path)); cfg.Path != "" && (filepath.IsAbs(cfg.Path) || p == ".." || strings.HasPrefix(p, "../")) {
		return nil, fmt.Errorf("git source %s: path %q must stay inside the repository", opts.Name, cfg.Path)
	}
	key, ok := parseRepoURL(cfg.URL)
	if !ok {
		return nil, fmt.Errorf("git source %s: cannot parse url %s", opts.Name, redact.URL(cfg.URL))
	}
	g.key = key
	var err error
	if g.auth, err = authFor(cfg, creds); err != nil {
		return nil, fmt.Errorf("git source %s: %w", opts.Name, g.redact.Err(err))
	}
	if cfg.SigningKeys != "" {
		if g.keyring, err = readKeyring(cfg.SigningKeys); err != nil {
			return nil, fmt.Errorf("git source %s: %w", opts.Name, err)
		}
	}
	if g.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("git source %s: %w", opts.Name, err)
	}
	// Both exist from the start, so that an alert or increase() sees the
	// first refusal as a change.
	g.m.headRefused.WithLabelValues(opts.Name).Set(0)
	g.m.verifyFailures.WithLabelValues(opts.Name)
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return nil, fmt.Errorf("git source %s: create work folder: %w", opts.Name, err)
	}
	return g, nil
}

// Name returns the source's name.
func (g *Git) Name() string { return g.name }

// isSSH reports whether the URL is reached over SSH (ssh:// or scp-like).
func isSSH(u string) bool {
	if strings.HasPrefix(u, "ssh://") || strings.HasPrefix(u, "git+ssh://") {
		return true
	}
	return !strings.Contains(u, "://") && scpPattern.MatchString(u) &&
		!strings.HasPrefix(u, "/") && !strings.HasPrefix(u, ".")
}

// authFor builds go-git's auth for the URL's transport. SSH always checks
// the server's host key against known_hosts; there is no insecure mode.
func authFor(cfg config.GitSource, creds GitCredentials) (transport.AuthMethod, error) {
	if isSSH(cfg.URL) {
		if len(creds.SSHKey) == 0 {
			return nil, errors.New("an ssh url needs ssh_key")
		}
		ep, err := transport.NewEndpoint(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("parse ssh url: %w", err)
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, creds.SSHKey, creds.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("load ssh key: %w", err)
		}
		var files []string
		if cfg.KnownHosts != "" {
			files = append(files, cfg.KnownHosts)
		}
		db, err := gitssh.NewKnownHostsDb(files...)
		if err != nil {
			return nil, fmt.Errorf("load known_hosts: %w", err)
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		// Offer only the host key types known_hosts lists for this host, or
		// the server may present another type and fail the check.
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(fmt.Sprintf("%s:%d", ep.Host, sshPort(ep.Port)))
		return keys, nil
	}
	if !strings.HasPrefix(cfg.URL, "https://") && !strings.HasPrefix(cfg.URL, "http://") {
		// file:// and plain paths need no credentials.
		return nil, nil
	}
	switch {
	case creds.Token != "":
		user := creds.Username
		if user == "" {
			user = defaultTokenUser
		}
		return &githttp.BasicAuth{Username: user, Password: creds.Token}, nil
	case creds.Username != "" || creds.Password != "":
		return &githttp.BasicAuth{Username: creds.Username, Password: creds.Password}, nil
	}
	return nil, nil
}

// urlPassword is the password written in a URL's credentials, if any.
func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func sshPort(p int) int {
	if p == 0 {
		return 22
	}
	return p
}
