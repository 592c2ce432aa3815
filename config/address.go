package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/internal/redact"
)

// This file holds the checks of every field that names a network place:
// host:port addresses, URLs and host names, in the declared environments
// and in driftless.yaml. (CIDR prefixes and IP addresses of the address,
// route and firewall kinds are checked with their kinds.)

// hostnameRe is a DNS name: labels of letters, digits, '-' and '_' (which
// SSH configurations and internal zones use), not starting or ending with
// '-', joined by dots, with an optional trailing dot.
var hostnameRe = regexp.MustCompile(`^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$`)

// checkHost checks a host to connect to: an IP address (IPv6 without
// brackets) or a DNS name.
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 || !hostnameRe.MatchString(h) {
		return fmt.Errorf("%q is not a host name or an IP address", h)
	}
	return nil
}

// checkPort checks a port given as text: a number from lo to 65535.
func checkPort(addr, port string, lo int) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < lo || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return fmt.Errorf("%q: port %q is not a number from %d to 65535", addr, port, lo)
	}
	return nil
}

// checkHostPort checks a listen address "host:port": the host may be
// empty (every interface), the port is a number from 0 to 65535 (0: any
// free port, for tests).
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	if host != "" {
		if err := checkHost(host); err != nil {
			return fmt.Errorf("%q: %w", addr, err)
		}
	}
	return checkPort(addr, port, 0)
}

// CheckDialAddress checks an address to connect to, "host:port": both
// parts present, the port from 1 to 65535.
func CheckDialAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	if err := checkHost(host); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	return checkPort(addr, port, 1)
}

// CheckURL checks a URL to connect to: one of schemes, a valid host, a
// port (when given) from 1 to 65535. Credentials in it are redacted from
// the message.
func CheckURL(raw string, schemes ...string) error {
	shown := redact.URL(raw)
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
		return fmt.Errorf("%q is not an %s URL", shown, strings.Join(schemes, " or "))
	}
	if err := checkHost(u.Hostname()); err != nil {
		return fmt.Errorf("%q: %w", shown, err)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		return checkPort(shown, p, 1)
	}
	return nil
}

// checkGitURL checks a Git source's URL: an http, https, ssh, git or file
// URL, the scp-like "[user@]host:path", or a path on this machine.
func checkGitURL(raw string) error {
	if isLocalPath(raw) {
		return nil
	}
	if strings.Contains(raw, "://") {
		if strings.HasPrefix(raw, "file://") {
			return nil
		}
		return CheckURL(raw, "https", "http", "ssh", "git")
	}
	hostPart, path, _ := strings.Cut(raw, ":")
	if i := strings.LastIndexByte(hostPart, '@'); i >= 0 {
		hostPart = hostPart[i+1:]
	}
	if err := checkHost(hostPart); err != nil || path == "" {
		return fmt.Errorf("%q is not a Git URL (https://host/repo.git, ssh://host/repo.git, host:repo.git or a local path)", redact.URL(raw))
	}
	return nil
}

// nodeAt returns the value node at path under n (mapping keys as
// strings, sequence indexes as ints), or the deepest node on the way that
// exists: an error then points at the value when it can, at its section
// otherwise.
func nodeAt(n *yaml.Node, path ...any) *yaml.Node {
	for _, step := range path {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil {
			return nil
		}
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// validateAddresses checks every network place of driftless.yaml, each
// error at its value: the external URL, the Git sources' URLs, the Git
// host APIs' base URLs, the notice webhooks' URLs and the mail server.
// (listen is checked with the other top-level settings.)
func validateAddresses(d *decoder, cfg *Daemon, root *yaml.Node) {
	check := func(err error, path ...any) {
		if err != nil {
			key := ""
			for _, p := range path {
				if s, ok := p.(string); ok {
					key = s
				}
			}
			d.errorf(nodeAt(root, path...), "%s: %v", key, err)
		}
	}
	if cfg.ExternalURL != "" {
		check(CheckURL(cfg.ExternalURL, "http", "https"), "external_url")
	}
	for i, s := range cfg.Sources {
		if s.Git != nil && s.Git.URL != "" {
			check(checkGitURL(s.Git.URL), "sources", i, "git", "url")
		}
	}
	for name, h := range map[string]*HostAPI{"github": cfg.Feedback.GitHub, "gitea": cfg.Feedback.Gitea, "gitlab": cfg.Feedback.GitLab} {
		if h != nil && h.BaseURL != "" {
			check(CheckURL(h.BaseURL, "https", "http"), "feedback", name, "base_url")
		}
	}
	for kind, hooks := range map[string][]NotifyWebhook{"webhooks": cfg.Notify.Webhooks, "slack": cfg.Notify.Slack} {
		for i, w := range hooks {
			if w.URL != "" {
				check(CheckURL(w.URL, "https", "http"), "notify", kind, i, "url")
			}
		}
	}
	if m := cfg.Notify.Email; m != nil && m.Server != "" {
		check(CheckDialAddress(m.Server), "notify", "email", "server")
	}
}
