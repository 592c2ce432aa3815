package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// webhook POSTs the report as JSON, exactly as status.Report encodes.
type webhook struct {
	url       string
	client    *http.Client
	userAgent string
}

func (w *webhook) encode(r status.Report) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return data, nil
}

// send posts payload; a 2xx answer is success, a 4xx other than 408 and
// 429 a permanent refusal. Errors never quote the URL.
func (w *webhook) send(ctx context.Context, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(payload))
	if err != nil {
		return kit.Permanent(errors.New("build request: invalid url"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.userAgent)
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error quotes the URL, which for chat webhooks is the secret.
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("post: %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		// Slack answers 429 with Retry-After when a channel gets too many messages.
		return kit.RetryAfter(err, kit.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return kit.Permanent(err)
}

// slack posts {"text": ...} in Slack's mrkdwn, which Slack, Mattermost and
// Rocket.Chat incoming webhooks all accept.
type slack struct{ webhook }

func (s *slack) encode(r status.Report) ([]byte, error) {
	data, err := json.Marshal(map[string]string{"text": slackText(r)})
	if err != nil {
		return nil, fmt.Errorf("encode slack message: %w", err)
	}
	return data, nil
}

// slackText is one line: an icon, the environment, what happened, the
// commit, the description, and a link to the status page.
func slackText(r status.Report) string {
	icon, what := ":information_source:", r.Status
	switch r.Status {
	case status.StatusSuccess:
		icon, what = ":white_check_mark:", "deployed"
	case status.StatusFailure:
		icon, what = ":x:", "deploy failed"
	case status.StatusRolledBack:
		icon, what = ":rewind:", "rolled back"
	case status.StatusDrift:
		icon, what = ":warning:", "drifted"
	case status.StatusPending:
		icon, what = ":hourglass_flowing_sand:", "deploying"
	case status.StatusPreview:
		icon, what = ":memo:", "plan ready"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s* %s `%s`", icon, slackEscape(r.Environment), what, slackEscape(kit.Abbrev(r.Commit)))
	if r.PullRequest > 0 {
		fmt.Fprintf(&b, " (pull request #%d)", r.PullRequest)
	}
	if d := strings.TrimSpace(r.Description); d != "" {
		b.WriteString(": " + slackEscape(d))
	}
	if r.URL != "" {
		fmt.Fprintf(&b, " <%s|status>", slackEscape(r.URL))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
