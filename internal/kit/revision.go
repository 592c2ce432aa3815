// Package kit holds the small helpers several of driftless's packages
// share: the short forms of a revision, the clock, retry with backoff,
// the default host parallelism. It imports nothing of driftless (the one
// redactor is internal/redact).
package kit

// ShortLen is how many characters of a commit id logs, metric labels and
// error messages carry.
const ShortLen = 12

// AbbrevLen is how many characters of a commit id people read in chat,
// e-mail and pull request comments, as Git hosts show them.
const AbbrevLen = 7

// Short is the first ShortLen characters of a commit id (all of a
// shorter one).
func Short(commit string) string { return prefix(commit, ShortLen) }

// Abbrev is the first AbbrevLen characters of a commit id.
func Abbrev(commit string) string { return prefix(commit, AbbrevLen) }

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// HostParallelism is how many hosts are worked on (and SSH connections
// open) at once when the configuration does not say.
const HostParallelism = 20
