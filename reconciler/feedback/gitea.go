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

// Gitea sets commit statuses on Gitea or Forgejo through
// POST /api/v1/repos/{owner}/{repo}/statuses/{sha}.
type Gitea struct {
	api         *restClient
	owner, repo string
	log         zerolog.Logger
}

var _ status.Reporter = (*Gitea)(nil)

// NewGitea builds a Gitea reporter. cfg.BaseURL is the server's root
// ("https://git.example"); Gitea has no public default.
func NewGitea(cfg HostAPIConfig, opts Options) (*Gitea, error) {
	opts = opts.withDefaults()
	owner, repo, err := splitRepository(cfg.Repository)
	if err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("needs base_url: Gitea has no public default server")
	}
	if cfg.Token == "" {
		return nil, errors.New("empty token")
	}
	api, err := newRestClient(cfg.BaseURL, http.Header{"Authorization": {"token " + cfg.Token}}, opts)
	if err != nil {
		return nil, err
	}
	return &Gitea{api: api, owner: owner, repo: repo, log: opts.Logger.With().Str("feedback", "gitea").Logger()}, nil
}

// giteaStatus is the body of Gitea's "create a commit status".
type giteaStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// Report sets the commit status of r's environment. It is synchronous and
// bounded by ctx; failures are logged.
func (g *Gitea) Report(ctx context.Context, r status.Report) {
	if !isCommitStatus(r) {
		return
	}
	defer recoverTo(g.log)
	path := "/api/v1/repos/" + url.PathEscape(g.owner) + "/" + url.PathEscape(g.repo) + "/statuses/" + url.PathEscape(r.Commit)
	// Gitea's states are GitHub's: pending, success, failure (and error, warning).
	body := giteaStatus{State: githubState(r.Status), TargetURL: r.URL, Description: describe(r), Context: statusContext(r.Environment)}
	if err := g.api.post(ctx, path, body); err != nil {
		g.log.Error().Err(err).Str("environment", r.Environment).Str("revision", kit.Abbrev(r.Commit)).
			Str("status", r.Status).Msg("cannot set the commit status")
	}
}
