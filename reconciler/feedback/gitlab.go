package feedback

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// GitLab sets commit statuses on GitLab through
// POST /api/v4/projects/{id}/statuses/{sha}.
type GitLab struct {
	api     *restClient
	project string
	log     zerolog.Logger
}

var _ status.Reporter = (*GitLab)(nil)

// defaultGitLab is the public GitLab, used when no base URL is set.
const defaultGitLab = "https://gitlab.com"

// NewGitLab builds a GitLab reporter. cfg.Repository is the project's
// numeric id or its full path ("group/sub/project"); cfg.BaseURL is a
// self-hosted server's root.
func NewGitLab(cfg HostAPIConfig, opts Options) (*GitLab, error) {
	opts = opts.withDefaults()
	if cfg.Repository == "" {
		return nil, errors.New("needs a repository: a project id or path")
	}
	if cfg.Token == "" {
		return nil, errors.New("empty token")
	}
	base := cfg.BaseURL
	if base == "" {
		base = defaultGitLab
	}
	api, err := newRestClient(base, http.Header{"Private-Token": {cfg.Token}}, opts)
	if err != nil {
		return nil, err
	}
	return &GitLab{api: api, project: cfg.Repository, log: opts.Logger.With().Str("feedback", "gitlab").Logger()}, nil
}

// gitlabStatus is the body of GitLab's "set the pipeline status of a commit".
type gitlabStatus struct {
	State       string `json:"state"`
	Name        string `json:"name"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
}

// gitlabState maps a report status to GitLab's states: a rollout that has
// started is "running"; a rolled-back one "failed".
func gitlabState(status string) string { return hostState(status, "failed", "running") }

// Report sets the commit status of r's environment. It is synchronous and
// bounded by ctx; failures are logged.
func (g *GitLab) Report(ctx context.Context, r status.Report) {
	if !isCommitStatus(r) {
		return
	}
	defer recoverTo(g.log)
	// A project path is one URL segment with its slashes escaped, as GitLab documents.
	path := "/api/v4/projects/" + url.PathEscape(g.project) + "/statuses/" + url.PathEscape(r.Commit)
	body := gitlabStatus{State: gitlabState(r.Status), Name: statusContext(r.Environment), TargetURL: r.URL, Description: describe(r)}
	if err := g.api.post(ctx, path, body); err != nil {
		g.log.Error().Err(err).Str("environment", r.Environment).Str("revision", kit.Abbrev(r.Commit)).
			Str("status", r.Status).Msg("cannot set the commit status")
	}
}
