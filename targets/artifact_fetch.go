package targets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/driftless/driftless/internal/redact"
)

// prepare downloads the artifact, checks its sha256 and every entry, and
// returns the archive as downloaded, to send to the host (which checks
// both again before unpacking it).
func (d *ArtifactDriver) prepare(ctx context.Context, s ArtifactSpec) ([]byte, error) {
	limit := d.maxBytes()
	f, err := d.fetch(ctx, s.URL, s.SHA256, limit)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, fmt.Errorf("read the download of %s: %w", redact.URL(s.URL), err)
	}
	format, err := archiveFormat(s.Format, s.URL, b)
	if err != nil {
		return nil, err
	}
	if err := checkArchive(bytes.NewReader(b), int64(len(b)), format, limit, discardEntries{}); err != nil {
		return nil, fmt.Errorf("check archive %s: %w", redact.URL(s.URL), err)
	}
	return b, nil
}

// fetch copies the artifact into a temporary file, hashing it on the way,
// and returns the file only when its sha256 is the declared one.
func (d *ArtifactDriver) fetch(ctx context.Context, raw, want string, max int64) (*os.File, error) {
	shown := redact.URL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse artifact URL %s: %w", shown, redact.New().Err(err))
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultArtifactTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.ReadCloser
	switch u.Scheme {
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", shown, err)
		}
		client := d.Client
		if client == nil {
			client = &http.Client{}
		}
		resp, err := client.Do(req)
		if err != nil {
			// The client's error repeats the URL; say it without its password.
			return nil, fmt.Errorf("download %s: %s", shown, redact.URL(err.Error()))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: status %s", shown, resp.Status)
		}
		body = resp.Body
	default:
		return nil, fmt.Errorf("artifact URL %s: scheme must be http or https", shown)
	}
	defer body.Close()
	f, err := os.CreateTemp(d.TempDir, "driftless-artifact-*")
	if err != nil {
		return nil, fmt.Errorf("create download file: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, max+1))
	if err == nil && n > max {
		err = fmt.Errorf("larger than %d bytes", max)
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			err = fmt.Errorf("sha256 mismatch: declared %s, got %s", want, got)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("download %s: %w", shown, err)
	}
	return f, nil
}

// artifactCacheSize is how many checked artifacts stay in memory. Two is
// enough for a rollout switching from one version to the next.
const artifactCacheSize = 2

// artifactCache holds the last artifacts checked, as downloaded, keyed by
// sha256, so that a rollout over many hosts downloads and checks each
// artifact once. Concurrent requests for the same key wait for the one
// download in flight. Failures are not cached: the next apply tries again.
type artifactCache struct {
	mu      sync.Mutex
	recent  []cachedArtifact // oldest first
	flights map[string]*artifactFlight
}

type cachedArtifact struct {
	sum  string
	data []byte
}

type artifactFlight struct {
	done chan struct{}
	data []byte
	err  error
}

// get returns the cached archive for sum, or runs load once for all callers.
func (c *artifactCache) get(ctx context.Context, sum string, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	for _, e := range c.recent {
		if e.sum == sum {
			c.mu.Unlock()
			return e.data, nil
		}
	}
	if f, ok := c.flights[sum]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.data, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &artifactFlight{done: make(chan struct{})}
	if c.flights == nil {
		c.flights = map[string]*artifactFlight{}
	}
	c.flights[sum] = f
	c.mu.Unlock()

	f.data, f.err = load()
	c.mu.Lock()
	delete(c.flights, sum)
	if f.err == nil {
		c.recent = append(c.recent, cachedArtifact{sum: sum, data: f.data})
		if len(c.recent) > artifactCacheSize {
			c.recent = c.recent[1:]
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.data, f.err
}

// archiveFormat names the format of an artifact: the declared one, else
// the URL's suffix, else the file's magic bytes.
func archiveFormat(declared, rawURL string, head []byte) (string, error) {
	switch declared {
	case FormatTar, FormatTarGz, FormatZip:
		return declared, nil
	case "tgz":
		return FormatTarGz, nil
	case "":
	default:
		return "", fmt.Errorf("unknown archive format %q (want tar, tar.gz or zip)", declared)
	}
	u := strings.ToLower(rawURL)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	switch {
	case strings.HasSuffix(u, ".tar.gz"), strings.HasSuffix(u, ".tgz"):
		return FormatTarGz, nil
	case strings.HasSuffix(u, ".tar"):
		return FormatTar, nil
	case strings.HasSuffix(u, ".zip"):
		return FormatZip, nil
	}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return FormatTarGz, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatTar, nil
	}
	return "", fmt.Errorf("cannot tell the archive format of %s: declare format: tar, tar.gz or zip", rawURL)
}
