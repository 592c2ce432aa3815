package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/targets"
)

// maxBody is how much of a response body an http check reads: enough for
// any health page, and a bound on what a misbehaving server can make us hold.
const maxBody = 1 << 20

// httpCheck GETs c.HTTP and expects c.ExpectStatus (200 by default) and,
// when c.ExpectBody is set, a body matching that regular expression.
func httpCheck(r *Runner, c config.Check, _ *config.Host, _ targets.Transport, _ *Result) (attempt, error) {
	// validateHTTP has checked the URL, the status and the expression.
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	var body *regexp.Regexp
	if c.ExpectBody != "" {
		var err error
		if body, err = regexp.Compile(c.ExpectBody); err != nil {
			return nil, fmt.Errorf("expect_body: %w", err)
		}
	}
	target := redact.URL(c.HTTP)
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTP, nil)
		if err != nil {
			return "", fmt.Errorf("build request for %s: %w", target, err)
		}
		req.Header.Set("User-Agent", "driftless-verify")
		resp, err := r.client.Do(req)
		if err != nil {
			return "", fmt.Errorf("GET %s: expected status %d, got no response: %w", target, want, stripURL(err))
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return "", fmt.Errorf("GET %s: read body: %w", target, err)
		}
		if resp.StatusCode != want {
			return "", fmt.Errorf("GET %s: expected status %d, got %d (body: %s)", target, want, resp.StatusCode, excerpt(data))
		}
		if body != nil && !body.Match(data) {
			return "", fmt.Errorf("GET %s: status %d as expected, but body does not match /%s/ (body: %s)", target, resp.StatusCode, body, excerpt(data))
		}
		if body != nil {
			return fmt.Sprintf("GET %s: status %d and body matches /%s/", target, resp.StatusCode, body), nil
		}
		return fmt.Sprintf("GET %s: status %d", target, resp.StatusCode), nil
	}, nil
}

// stripURL returns the cause of a *url.Error, whose text repeats the URL
// with any credentials in it; the caller names the redacted URL itself.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// excerpt is the start of a body, on one line, for a reason.
func excerpt(b []byte) string {
	const n = 200
	s := string(b)
	if len(s) > n {
		s = s[:n] + "..."
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "empty"
	}
	return fmt.Sprintf("%q", s)
}
