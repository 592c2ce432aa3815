package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// httpGet fetches url with a short timeout and returns the status and body.
func httpGet(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s: %w", url, err)
	}
	return resp.StatusCode, b, nil
}

// getJSON fetches a JSON document of the daemon's API into v.
func (d *daemon) getJSON(path string, v any) error {
	code, b, err := httpGet(context.Background(), d.URL+path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("get %s: status %d: %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// envStatus is the part of GET /api/v1/environments/{name} the tests read.
type envStatus struct {
	Name           string   `json:"name"`
	Applied        string   `json:"applied"`
	LastGood       string   `json:"last_good"`
	Quarantined    []string `json:"quarantined"`
	State          string   `json:"state"`
	DriftResources int      `json:"drift_resources"`
	LastResult     string   `json:"last_result"`
	LastError      string   `json:"last_error"`
}

// run is the part of a history entry the tests read.
type run struct {
	ID       uint64 `json:"id"`
	Revision struct {
		Commit string `json:"commit"`
	} `json:"revision"`
	Trigger string    `json:"trigger"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Result  string    `json:"result"`
	Changes int       `json:"changes"`
	Error   string    `json:"error"`
	// Decision is the approval the run went through, or its rejection.
	Decision *struct {
		By          string `json:"by"`
		PullRequest int    `json:"pull_request"`
	} `json:"decision"`
}

// env returns the environment's status; a 404 (not known yet) is an error.
func (d *daemon) env(name string) (envStatus, error) {
	var st envStatus
	err := d.getJSON("/api/v1/environments/"+name, &st)
	return st, err
}

// history returns the environment's runs, newest first.
func (d *daemon) history(name string) ([]run, error) {
	var runs []run
	err := d.getJSON("/api/v1/environments/"+name+"/history?limit=100", &runs)
	return runs, err
}

// metric sums the samples of the series name whose labels include every
// pair of want, read from the daemon's /metrics. found is false when no
// series matched.
func (d *daemon) metric(name string, want map[string]string) (sum float64, found bool, err error) {
	code, body, err := httpGet(context.Background(), d.URL+"/metrics")
	if err != nil {
		return 0, false, err
	}
	if code != http.StatusOK {
		return 0, false, fmt.Errorf("get /metrics: status %d", code)
	}
	return sumSeries(string(body), name, want)
}

// sumSeries parses Prometheus text exposition: it is small enough to do
// here, and the daemon's output is what is under test.
func sumSeries(text, name string, want map[string]string) (float64, bool, error) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return 0, false, fmt.Errorf("metrics line without a value: %q", line)
		}
		series, value := line[:sp], line[sp+1:]
		metric, labels, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for k, v := range want {
			if !strings.Contains(labels, k+`="`+v+`"`) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		var f float64
		if _, err := fmt.Sscan(value, &f); err != nil {
			return 0, false, fmt.Errorf("metrics value of %q: %w", line, err)
		}
		sum += f
		found = true
	}
	return sum, found, nil
}
