package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/targets"
)

// prometheusCheck runs the instant query c.Prometheus on the Prometheus
// server c.Server and compares the first sample's value with c.Threshold
// using c.Op (">" by default).
func prometheusCheck(r *Runner, c config.Check, _ *config.Host, _ targets.Transport, _ *Result) (attempt, error) {
	// validatePrometheus has checked the server's URL and the operator.
	base, err := url.Parse(c.Server)
	if err != nil {
		return nil, fmt.Errorf("server: %w", redact.New().Err(err))
	}
	op := c.Op
	if op == "" {
		op = ">"
	}
	cmp, err := compareFunc(op)
	if err != nil {
		return nil, err
	}
	endpoint := base.JoinPath("api", "v1", "query")
	endpoint.RawQuery = url.Values{"query": {c.Prometheus}}.Encode()
	server := redact.URL(c.Server)
	return func(ctx context.Context) (string, error) {
		v, err := r.promQuery(ctx, endpoint.String())
		if err != nil {
			return "", fmt.Errorf("query %q on %s: expected a value %s %g: %w", c.Prometheus, server, op, c.Threshold, err)
		}
		if !cmp(v, c.Threshold) {
			return "", fmt.Errorf("query %q: expected a value %s %g, got %g", c.Prometheus, op, c.Threshold, v)
		}
		return fmt.Sprintf("query %q: %g %s %g", c.Prometheus, v, op, c.Threshold), nil
	}, nil
}

// promQuery GETs an instant query and returns its first sample's value.
func (r *Runner) promQuery(ctx context.Context, endpoint string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no response: %w", stripURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	v, err := ParseQueryResponse(data)
	if err != nil && resp.StatusCode != http.StatusOK && !isPromError(err) {
		// Not Prometheus's JSON at all (a proxy's error page): the status
		// says more than the parse error.
		return 0, fmt.Errorf("status %d (body: %s)", resp.StatusCode, excerpt(data))
	}
	return v, err
}

// promError is an error Prometheus itself reported (status "error").
type promError struct{ kind, msg string }

func (e *promError) Error() string { return fmt.Sprintf("prometheus says %s: %s", e.kind, e.msg) }

func isPromError(err error) bool {
	var pe *promError
	return errors.As(err, &pe)
}

// ErrNoSample is returned for a query whose result holds no sample.
var ErrNoSample = errors.New("the query returned no sample (empty result)")

// ParseQueryResponse reads the JSON answer of Prometheus's
// /api/v1/query and returns the value of its first sample. A vector's
// first element and a scalar are accepted; an empty vector is ErrNoSample;
// a matrix or a string is an error, as is a response with status "error".
func ParseQueryResponse(data []byte) (float64, error) {
	var resp struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return 0, fmt.Errorf("parse response as Prometheus API JSON: %w", err)
	}
	switch resp.Status {
	case "success":
	case "error":
		return 0, &promError{kind: resp.ErrorType, msg: resp.Error}
	default:
		return 0, fmt.Errorf("parse response: status %q is neither success nor error", resp.Status)
	}
	switch resp.Data.ResultType {
	case "vector":
		var vec []struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("parse vector: %w", err)
		}
		if len(vec) == 0 {
			return 0, ErrNoSample
		}
		return parseSample(vec[0].Value)
	case "scalar":
		var sample []json.RawMessage
		if err := json.Unmarshal(resp.Data.Result, &sample); err != nil {
			return 0, fmt.Errorf("parse scalar: %w", err)
		}
		return parseSample(sample)
	case "matrix", "string":
		return 0, fmt.Errorf("result type %s: expected an instant vector or a scalar", resp.Data.ResultType)
	}
	return 0, fmt.Errorf("parse response: unknown result type %q", resp.Data.ResultType)
}

// parseSample reads a [<unix time>, "<value>"] pair.
func parseSample(pair []json.RawMessage) (float64, error) {
	if len(pair) != 2 {
		return 0, fmt.Errorf("parse sample: expected [time, \"value\"], got %d elements", len(pair))
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("parse sample value: %w", err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("parse sample value: %w", err)
	}
	return v, nil
}

// compareFunc returns the comparison an operator names. NaN compares
// false with everything, even with "!=", so a NaN never passes a check.
func compareFunc(op string) (func(v, threshold float64) bool, error) {
	var f func(v, t float64) bool
	switch op {
	case "<":
		f = func(v, t float64) bool { return v < t }
	case "<=":
		f = func(v, t float64) bool { return v <= t }
	case ">":
		f = func(v, t float64) bool { return v > t }
	case ">=":
		f = func(v, t float64) bool { return v >= t }
	case "==":
		f = func(v, t float64) bool { return v == t }
	case "!=":
		f = func(v, t float64) bool { return v != t }
	default:
		return nil, fmt.Errorf("op %q: expected one of <, <=, >, >=, ==, !=", op)
	}
	return func(v, t float64) bool { return !math.IsNaN(v) && f(v, t) }, nil
}
