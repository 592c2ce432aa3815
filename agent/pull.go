package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/reconciler/status"
)

// Narrow keeps, of a loaded revision, what pull mode applies on the host
// named host: each environment that names it, with that host alone,
// reached over the local transport (rooted at root when set, a sandbox
// for tests). Preview templates are left out: pull mode runs no previews.
// The revision is changed in place and returned.
func Narrow(rev *config.Revision, host, root string) *config.Revision {
	envs := rev.Environments[:0]
	for _, e := range rev.Environments {
		if e.Preview {
			continue
		}
		var mine *config.Host
		for _, h := range e.Hosts {
			if h.Name == host {
				mine = h
				break
			}
		}
		if mine == nil {
			continue
		}
		mine.Transport, mine.Address, mine.Port, mine.User, mine.Sudo, mine.HostKey, mine.Root = "local", "", 0, "", false, "", root
		e.Hosts = []*config.Host{mine}
		// One host: the canary and batch sizes of the fleet do not apply.
		e.Rollout = config.Rollout{}
		envs = append(envs, e)
	}
	rev.Environments = envs
	return rev
}

// Reporter sends a pull-mode host's state to a central daemon, at start
// and then every Interval: POST URL/api/v1/pulled/HOST with the token as
// bearer. A failed report is logged and sent again at the next tick.
type Reporter struct {
	// URL is the central daemon's base URL.
	URL   string
	Token config.Secret
	Host  string
	// Version is this binary's version, shown beside the host.
	Version  string
	Interval time.Duration
	// States gives the host's environments' states.
	States func() []status.EnvStatus
	Client *http.Client
	Logger zerolog.Logger
}

// Run reports until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if err := r.Report(ctx); err != nil && ctx.Err() == nil {
			r.Logger.Warn().Err(err).Str("url", redact.URL(r.URL)).Msg("pull report failed; next try at the next interval")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Report sends the state once.
func (r *Reporter) Report(ctx context.Context) error {
	token, err := r.Token.Read()
	if err != nil {
		return fmt.Errorf("pull report: %w", err)
	}
	body, err := json.Marshal(status.PulledOf(r.Host, r.Version, r.States()))
	if err != nil {
		return fmt.Errorf("pull report: encode: %w", err)
	}
	u := strings.TrimRight(r.URL, "/") + "/api/v1/pulled/" + url.PathEscape(r.Host)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("pull report: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("pull report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("pull report: %s answered %s: %s", redact.URL(u), resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
