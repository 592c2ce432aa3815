// Package feedback reports what driftless did back to the Git host that
// holds the declared state: a commit status per environment (GitHub, Gitea,
// GitLab), GitHub Deployments, and on a pull request a comment with the plan
// that merging it would apply.
//
// Every reporter is synchronous: Report returns when the host has answered,
// the retries have run out or ctx has ended. The reconciler calls Report in
// its own goroutine with a timeout, so a slow or failing Git host never holds
// a rollout. Errors are logged, never returned, and never panic.
package feedback

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// Options are the dependencies shared by every feedback reporter.
type Options struct {
	// Logger receives one line per failed report.
	Logger zerolog.Logger
	// HTTPClient makes the API calls (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
	// Backoff is the retry policy of each API call.
	Backoff kit.Backoff
	// UserAgent names the daemon to the Git host (empty: "driftless").
	UserAgent string
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		// The timeout bounds one request even when a caller forgets a deadline.
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.UserAgent == "" {
		o.UserAgent = "driftless"
	}
	return o
}

// New builds a reporter for each Git host configured in cfg, reading their
// tokens. A host that cannot be set up (a token that cannot be read, a bad
// repository or base URL) is an error: the daemon should not start with
// feedback silently missing.
func New(cfg config.Feedback, opts Options) ([]status.Reporter, error) {
	var out []status.Reporter
	type build func(HostAPIConfig, Options) (status.Reporter, error)
	for _, h := range []struct {
		name string
		api  *config.HostAPI
		make build
	}{
		{"github", cfg.GitHub, func(c HostAPIConfig, o Options) (status.Reporter, error) { return NewGitHub(c, o) }},
		{"gitea", cfg.Gitea, func(c HostAPIConfig, o Options) (status.Reporter, error) { return NewGitea(c, o) }},
		{"gitlab", cfg.GitLab, func(c HostAPIConfig, o Options) (status.Reporter, error) { return NewGitLab(c, o) }},
	} {
		if h.api == nil {
			continue
		}
		token, err := h.api.Token.Read()
		if err != nil {
			return nil, fmt.Errorf("feedback %s: token: %w", h.name, err)
		}
		rp, err := h.make(HostAPIConfig{
			BaseURL: h.api.BaseURL, Token: string(token), Repository: h.api.Repository, Deployments: h.api.Deployments,
		}, opts)
		if err != nil {
			return nil, fmt.Errorf("feedback %s: %w", h.name, err)
		}
		if h.api.Source != "" {
			rp = sourceFilter{source: h.api.Source, next: rp}
		}
		out = append(out, rp)
	}
	return out, nil
}

// sourceFilter passes on only the reports of one source's revisions: the
// Git host of a repository hears of that repository's commits only.
type sourceFilter struct {
	source string
	next   status.Reporter
}

// Report forwards r when it is about a revision of the filter's source.
func (f sourceFilter) Report(ctx context.Context, r status.Report) {
	if r.Source == f.source {
		f.next.Report(ctx, r)
	}
}

// HostAPIConfig is config.HostAPI with its token already read.
type HostAPIConfig struct {
	// BaseURL is the API's root; empty means the public service.
	BaseURL string
	Token   string
	// Repository is "owner/name", or for GitLab a project id or path.
	Repository  string
	Deployments bool
}

// maxDescription is GitHub's limit on a commit status description; Gitea
// and GitLab accept more, but a short line reads better everywhere.
const maxDescription = 140

// describe is the one-line description of a report, prefixed when the
// commit was rolled back so that a red status says why it is red.
func describe(r status.Report) string {
	d := strings.Join(strings.Fields(r.Description), " ")
	switch {
	case r.Status == status.StatusRolledBack && d == "":
		d = "rolled back"
	case r.Status == status.StatusRolledBack && !strings.HasPrefix(strings.ToLower(d), "rolled back"):
		d = "rolled back: " + d
	case d == "":
		d = r.Status
	}
	return truncate(d, maxDescription)
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// hostState maps a report status to a Git host's words: "success", its
// word for failed (a rolled-back rollout failed), or its word for a
// rollout under way (any other status).
func hostState(st, failed, underway string) string {
	switch st {
	case status.StatusSuccess:
		return "success"
	case status.StatusFailure, status.StatusRolledBack:
		return failed
	}
	return underway
}

// statusContext is the name a commit status carries, one per environment.
func statusContext(env string) string { return "driftless/" + env }

// isCommitStatus reports whether a report becomes a commit status: drift
// is about a commit already reported, and a preview is a pull request
// comment, so neither changes the commit's status.
func isCommitStatus(r status.Report) bool {
	switch r.Status {
	case status.StatusPending, status.StatusSuccess, status.StatusFailure, status.StatusRolledBack:
		return r.Commit != "" && r.Environment != ""
	}
	return false
}

// splitRepository parses "owner/name".
func splitRepository(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q: want owner/name", repo)
	}
	return owner, name, nil
}

// recoverTo logs a panic instead of letting it end the daemon: a report is
// never worth a crash.
func recoverTo(log zerolog.Logger) {
	if p := recover(); p != nil {
		log.Error().Interface("panic", p).Msg("reporter panicked")
	}
}
