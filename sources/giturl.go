package sources

import (
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// scpPattern matches Git's scp-like SSH syntax: "git@host:owner/repo.git".
var scpPattern = regexp.MustCompile(`^(?:[^@/]+@)?([^:/]+):(.+)$`)

// repoKey identifies a repository independently of how its URL is written:
// the host name (lower case, without port, user or scheme) and the path
// (without a leading slash or a trailing ".git" or "/"). The HTTPS and SSH
// URLs of one repository give the same key.
type repoKey struct {
	host string
	path string
}

// parseRepoURL returns the key of a clone URL (https, http, ssh, git,
// file, scp-like or a plain path); ok is false when s is empty.
func parseRepoURL(s string) (repoKey, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return repoKey{}, false
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return repoKey{}, false
		}
		if u.Scheme == "file" {
			return repoKey{path: cleanRepoPath(filepath.Clean(u.Path), false)}, true
		}
		return repoKey{host: strings.ToLower(u.Hostname()), path: cleanRepoPath(u.Path, true)}, true
	}
	if m := scpPattern.FindStringSubmatch(s); m != nil && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".") {
		return repoKey{host: strings.ToLower(m[1]), path: cleanRepoPath(m[2], true)}, true
	}
	if abs, err := filepath.Abs(s); err == nil {
		s = abs
	}
	return repoKey{path: cleanRepoPath(s, false)}, true
}

// cleanRepoPath trims what varies between spellings of one repository path.
// Hosted paths (owner/name) are compared without case, as Git hosts do.
func cleanRepoPath(p string, hosted bool) string {
	p = path.Clean("/" + strings.TrimSuffix(strings.TrimSuffix(p, "/"), ".git"))
	p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".git")
	if hosted {
		p = strings.ToLower(p)
	}
	return p
}

// matchesRepo reports whether an event's repository (its clone URLs or its
// "owner/name") is the repository of key. A full name matches when the
// configured path ends with it, which covers GitLab subgroups and hosts
// serving under a path prefix. A false match costs only one extra fetch.
func matchesRepo(key repoKey, cloneURLs []string, fullName string) bool {
	for _, u := range cloneURLs {
		if k, ok := parseRepoURL(u); ok && k == key {
			return true
		}
	}
	name := strings.ToLower(strings.Trim(strings.TrimSuffix(strings.TrimSpace(fullName), ".git"), "/"))
	if name == "" || key.host == "" {
		return false
	}
	return key.path == name || strings.HasSuffix(key.path, "/"+name)
}
