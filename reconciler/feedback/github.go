package feedback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// GitHub reports to GitHub or GitHub Enterprise: a commit status per
// environment, optionally a Deployment per commit and environment with its
// statuses, and the plan of a pull request as a comment edited in place;
// the plan of a revision awaiting approval goes to the same comment on the
// pull requests that brought its commit.
type GitHub struct {
	client      *github.Client
	owner, repo string
	deployments bool
	backoff     kit.Backoff
	log         zerolog.Logger

	mu sync.Mutex
	// deploys remembers the Deployment created for a commit and an
	// environment, so that later statuses land on it instead of a new one.
	// An entry is dropped once its deployment reaches a final state.
	deploys map[string]int64
	// locks serialise the work on one pull request comment, so that two
	// quick pushes cannot both find no comment and add two.
	locks map[string]*keyLock
}

var _ status.Reporter = (*GitHub)(nil)

// maxRemembered bounds the deployments remembered between statuses.
const maxRemembered = 1024

// NewGitHub builds a GitHub reporter. cfg.BaseURL, when set, is a GitHub
// Enterprise server ("https://ghe.example"); "/api/v3/" is added as
// Enterprise serves its API there.
func NewGitHub(cfg HostAPIConfig, opts Options) (*GitHub, error) {
	opts = opts.withDefaults()
	owner, repo, err := splitRepository(cfg.Repository)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("empty token")
	}
	client := github.NewClient(opts.HTTPClient).WithAuthToken(cfg.Token)
	client.UserAgent = opts.UserAgent
	if cfg.BaseURL != "" {
		if client, err = client.WithEnterpriseURLs(cfg.BaseURL, cfg.BaseURL); err != nil {
			return nil, fmt.Errorf("base url %q: %w", cfg.BaseURL, err)
		}
	}
	return &GitHub{
		client: client, owner: owner, repo: repo, deployments: cfg.Deployments,
		backoff: opts.Backoff, log: opts.Logger.With().Str("feedback", "github").Logger(),
		deploys: map[string]int64{}, locks: map[string]*keyLock{},
	}, nil
}

// Report sends r to GitHub. It is synchronous and bounded by ctx; failures
// are logged.
func (g *GitHub) Report(ctx context.Context, r status.Report) {
	log := g.log.With().Str("environment", r.Environment).Str("revision", kit.Abbrev(r.Commit)).Str("status", r.Status).Logger()
	defer recoverTo(log)
	if r.Status == status.StatusPreview {
		if r.PullRequest <= 0 || r.Environment == "" {
			return
		}
		if err := g.comment(ctx, r); err != nil {
			log.Error().Err(err).Int("pull_request", r.PullRequest).Msg("cannot comment the plan on the pull request")
		}
		return
	}
	if r.Status == status.StatusRemoved {
		// A preview environment torn down: its Deployment goes inactive.
		if g.deployments && r.Commit != "" && r.Environment != "" {
			if err := g.deployment(ctx, r); err != nil {
				log.Error().Err(err).Msg("cannot mark the deployment inactive")
			}
		}
		return
	}
	if !isCommitStatus(r) {
		return
	}
	if err := g.status(ctx, r); err != nil {
		log.Error().Err(err).Msg("cannot set the commit status")
	}
	if r.Gate == status.StateAwaitingApproval && r.Plan != nil {
		if err := g.commentPulls(ctx, r); err != nil {
			log.Error().Err(err).Msg("cannot comment the plan awaiting approval on its pull request")
		}
	}
	if g.deployments {
		if err := g.deployment(ctx, r); err != nil {
			log.Error().Err(err).Msg("cannot update the deployment")
		}
	}
}

// githubState maps a report status to a commit status state (Gitea's
// are the same).
func githubState(status string) string { return hostState(status, "failure", "pending") }

func (g *GitHub) status(ctx context.Context, r status.Report) error {
	st := &github.RepoStatus{
		State:       github.String(githubState(r.Status)),
		Context:     github.String(statusContext(r.Environment)),
		Description: github.String(describe(r)),
	}
	if r.URL != "" {
		st.TargetURL = github.String(r.URL)
	}
	return g.backoff.Do(ctx, func(ctx context.Context) error {
		_, _, err := g.client.Repositories.CreateStatus(ctx, g.owner, g.repo, r.Commit, st)
		return classify("create commit status", err)
	})
}

// deploymentState maps a report to a deployment status state: a revision
// held at a gate (promotion, window, approval) is queued until it proceeds.
func deploymentState(r status.Report) string {
	if r.Status == status.StatusPending && r.Gate != "" {
		return "queued"
	}
	if r.Status == status.StatusRemoved {
		return "inactive"
	}
	return hostState(r.Status, "failure", "in_progress")
}

// deployment finds or creates the Deployment of r's commit and environment
// and adds a status to it.
func (g *GitHub) deployment(ctx context.Context, r status.Report) error {
	key := r.Commit + "\x00" + r.Environment
	unlock := g.lock("deploy\x00" + key)
	defer unlock()
	id, err := g.findDeployment(ctx, key, r)
	if err != nil {
		return err
	}
	req := &github.DeploymentStatusRequest{
		State:       github.String(deploymentState(r)),
		Description: github.String(describe(r)),
		// Only a successful deployment should mark the environment's older ones inactive.
		AutoInactive: github.Bool(r.Status == status.StatusSuccess),
	}
	if r.URL != "" {
		req.EnvironmentURL = github.String(r.URL)
		req.LogURL = github.String(r.URL)
	}
	err = g.backoff.Do(ctx, func(ctx context.Context) error {
		_, _, err := g.client.Repositories.CreateDeploymentStatus(ctx, g.owner, g.repo, id, req)
		return classify("create deployment status", err)
	})
	if err == nil && r.Status != status.StatusPending {
		g.mu.Lock()
		delete(g.deploys, key)
		g.mu.Unlock()
	}
	return err
}

// findDeployment returns the deployment of key: remembered, else listed
// (the daemon may have restarted since it was created), else created.
func (g *GitHub) findDeployment(ctx context.Context, key string, r status.Report) (int64, error) {
	g.mu.Lock()
	id, ok := g.deploys[key]
	g.mu.Unlock()
	if ok {
		return id, nil
	}
	err := g.backoff.Do(ctx, func(ctx context.Context) error {
		ds, _, err := g.client.Repositories.ListDeployments(ctx, g.owner, g.repo, &github.DeploymentsListOptions{
			SHA: r.Commit, Environment: r.Environment, ListOptions: github.ListOptions{PerPage: 1},
		})
		if err != nil {
			return classify("list deployments", err)
		}
		if len(ds) > 0 {
			id = ds[0].GetID()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if id == 0 {
		req := &github.DeploymentRequest{
			Ref:         github.String(r.Commit),
			Environment: github.String(r.Environment),
			Description: github.String(describe(r)),
			// driftless deploys exactly the commit it was given: GitHub must
			// neither merge the default branch into it nor wait for checks.
			AutoMerge:        github.Bool(false),
			RequiredContexts: &[]string{},
			Task:             github.String("deploy"),
		}
		err = g.backoff.Do(ctx, func(ctx context.Context) error {
			d, _, err := g.client.Repositories.CreateDeployment(ctx, g.owner, g.repo, req)
			if err != nil {
				return classify("create deployment", err)
			}
			if id = d.GetID(); id == 0 {
				return kit.Permanent(errors.New("create deployment: the answer has no id"))
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	g.mu.Lock()
	// Entries live from a rollout's start to its end, so this bound is never
	// reached in practice; if final statuses keep failing it stops the map
	// from growing, at the cost of a lookup for the forgotten ones.
	if len(g.deploys) >= maxRemembered {
		clear(g.deploys)
	}
	g.deploys[key] = id
	g.mu.Unlock()
	return id, nil
}

// classify wraps a go-github error: a refusal that another attempt cannot
// change (401, 404, 422...) is permanent; a server error, a rate limit or
// a network failure is worth another attempt.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("%s: %w", what, err)
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	var er *github.ErrorResponse
	switch {
	case errors.As(err, &rl):
		return kit.RetryAfter(err, time.Until(rl.Rate.Reset.Time))
	case errors.As(err, &abuse):
		return kit.RetryAfter(err, abuse.GetRetryAfter())
	case errors.As(err, &er) && er.Response != nil:
		if retryableStatus(er.Response.StatusCode) {
			return kit.RetryAfter(err, kit.ParseRetryAfter(er.Response.Header.Get("Retry-After"), time.Now()))
		}
		return kit.Permanent(err)
	}
	return err
}

// retryableStatus reports whether an HTTP status may change on another attempt.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}
