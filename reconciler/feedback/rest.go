package feedback

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

	"github.com/driftless/driftless/internal/kit"
)

// restClient posts JSON to a Git host's REST API with net/http, for the
// hosts without a Go client here (Gitea, GitLab).
type restClient struct {
	http      *http.Client
	base      *url.URL
	header    http.Header
	backoff   kit.Backoff
	userAgent string
}

// newRestClient checks base and keeps the headers every request carries.
func newRestClient(base string, header http.Header, opts Options) (*restClient, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base url %q: want http(s)://host[/path]", base)
	}
	if u.User != nil {
		return nil, fmt.Errorf("base url of %s: must not carry credentials, use the token", u.Host)
	}
	return &restClient{http: opts.HTTPClient, base: u, header: header, backoff: opts.Backoff, userAgent: opts.UserAgent}, nil
}

// post sends body as JSON to the escaped path under the base URL, retrying
// what may pass. A 2xx answer is success; any other is an error that
// quotes the start of the host's answer.
func (c *restClient) post(ctx context.Context, escapedPath string, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	u, err := url.Parse(c.base.String() + escapedPath)
	if err != nil {
		return fmt.Errorf("build url: %w", err)
	}
	return c.backoff.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(data))
		if err != nil {
			return kit.Permanent(fmt.Errorf("build request: %w", err))
		}
		for k, v := range c.header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		resp, err := c.http.Do(req)
		if err != nil {
			// The URL holds no secret (the token travels in a header), so the error may quote it.
			return fmt.Errorf("post %s: %w", u.Path, err)
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		// Drain a little more so the connection can be reused, without reading an endless body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode/100 == 2 {
			return nil
		}
		err = fmt.Errorf("post %s: %s: %s", u.Path, resp.Status, strings.TrimSpace(string(snippet)))
		if retryableStatus(resp.StatusCode) {
			return kit.RetryAfter(err, kit.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		}
		return kit.Permanent(err)
	})
}
