// Package kit holds the small helpers several of driftless's packages
// share: the short form of a revision, the clock, retry with backoff. It
// imports nothing of driftless (the one redactor is internal/redact).
package kit

// ShortLen is how many characters of a commit id logs, metric labels and
// error messages carry.
const ShortLen = 12

// Short is the first ShortLen characters of a commit id (all of a
// shorter one).
func Short(commit string) string {
	if len(commit) > ShortLen {
		return commit[:ShortLen]
	}
	return commit
}
