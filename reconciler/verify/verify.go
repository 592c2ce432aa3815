// Package verify runs the verification checks of an environment (http,
// tcp, command, prometheus, junit) against one host after a rollout batch, with
// retries, and says for each whether it passed and why. It returns results
// and counts nothing itself: the reconciler records
// driftless_verification_total from them.
package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/internal/redact"
	"github.com/driftless/driftless/targets"
)

// The defaults applied when a check leaves a field at its zero value.
const (
	// DefaultTimeout bounds one attempt of a check.
	DefaultTimeout = 5 * time.Second
	// DefaultInterval is the pause between two attempts.
	DefaultInterval = 2 * time.Second
)

// Result is the outcome of one check on one host.
type Result struct {
	// Check is the check's name, or "<kind>:<target>" when it has none.
	Check string `json:"check"`
	// Label names the check in metrics, where it must not vary per host:
	// the check's name, or "<kind>#<n>" for the n-th check of the
	// environment's verify list (just "<kind>" from Check alone).
	Label string `json:"label"`
	Kind  string `json:"kind"`
	Host  string `json:"host"`
	OK    bool   `json:"ok"`
	// Reason says what was expected and what was seen (on success too).
	Reason string `json:"reason"`
	// Tests are a junit check's test counts, from the report of its last
	// attempt (nil for other kinds, or when no report was read).
	Tests *Tests `json:"tests,omitempty"`
	// Attempts is how many attempts ran (0 when the check was invalid).
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration"`
}

// Options are the dependencies of a Runner. Every field is optional.
type Options struct {
	// HTTPClient makes the requests of http and prometheus checks; its own
	// Timeout should be zero, since each attempt carries a deadline.
	HTTPClient *http.Client
	Logger     zerolog.Logger
	// Clock defaults to the wall clock.
	Clock kit.Clock
}

// Runner runs checks. It is safe for concurrent use.
type Runner struct {
	client *http.Client
	log    zerolog.Logger
	clock  kit.Clock
}

// New returns a Runner with opts' dependencies, defaults filled in.
func New(opts Options) *Runner {
	r := &Runner{client: opts.HTTPClient, log: opts.Logger, clock: opts.Clock}
	if r.client == nil {
		r.client = &http.Client{}
	}
	if r.clock == nil {
		r.clock = kit.Wall{}
	}
	return r
}

// attempt is one try of a prepared check. On success it returns what it
// saw; otherwise an error whose text says what was expected and what was seen.
type attempt func(ctx context.Context) (okReason string, err error)

// checker turns a check into an attempt, failing early when the check
// itself is malformed (a bad regular expression, an unknown operator). An
// attempt may fill in what a kind adds to its result (a junit check's
// test counts) through out.
type checker func(r *Runner, c config.Check, h *config.Host, t targets.Transport, out *Result) (attempt, error)

// checkKind is one row of the table of check kinds: the check's own
// validation, which config's loader runs at load (Kinds), and how an
// attempt is prepared, which runs only on a check that validates.
type checkKind struct {
	validate func(c config.Check) []config.Problem
	prepare  checker
}

// Validate implements config.CheckKind.
func (k checkKind) Validate(c config.Check) []config.Problem { return k.validate(c) }

// table is the table of check kinds: a new kind is one file and one row.
func table() map[string]checkKind {
	return map[string]checkKind{
		"http":       {validateHTTP, httpCheck},
		"tcp":        {validateTCP, tcpCheck},
		"command":    {validateCommand, commandCheck},
		"prometheus": {validatePrometheus, prometheusCheck},
		"junit":      {validateJUnit, junitCheck},
	}
}

// Kinds is the table of check kinds as config's loader takes it
// (LoadOptions.Checks), so that a check is refused at load, with its
// position, by the same validation that would refuse it here.
func Kinds() config.CheckKinds {
	out := config.CheckKinds{}
	for name, k := range table() {
		out[name] = k
	}
	return out
}

// prepare validates c with its kind's validation, then prepares its attempt.
func prepare(r *Runner, c config.Check, h *config.Host, t targets.Transport, out *Result) (attempt, error) {
	k, ok := table()[c.Kind()]
	if !ok {
		return nil, errors.New("check has none of http, tcp, command, prometheus, junit set")
	}
	if err := config.Problems(k.validate(c)); err != nil {
		return nil, err
	}
	return k.prepare(r, c, h, t, out)
}

// Attempt is one finished attempt of a check, for progress displays.
type Attempt struct {
	// Check is the check's name (Name).
	Check string
	Host  string
	// N is the attempt's number, from 1 to Of, the most that may run.
	N, Of int
	OK    bool
}

type attemptsKey struct{}

// WithAttempts returns a context under which Check calls fn after each
// attempt. The hook rides the context, as net/http/httptrace's does, so
// that a caller following one host's verification (a progress display)
// needs no other way into the checks than the call it already makes.
func WithAttempts(ctx context.Context, fn func(Attempt)) context.Context {
	return context.WithValue(ctx, attemptsKey{}, fn)
}

// Run runs every check of h, in order, and returns one result per check.
// A failing check does not stop the following ones, so the report shows
// all that is wrong at once.
func (r *Runner) Run(ctx context.Context, env string, h *config.Host, t targets.Transport) []Result {
	results := make([]Result, 0, len(h.Checks))
	for i, c := range h.Checks {
		res := r.Check(ctx, c, h, t)
		if c.Name == "" {
			res.Label = fmt.Sprintf("%s#%d", res.Label, i+1)
		}
		ev := r.log.Info()
		if !res.OK {
			ev = r.log.Warn()
		}
		ev.Str("environment", env).Str("host", res.Host).Str("check", res.Check).
			Bool("ok", res.OK).Int("attempts", res.Attempts).Dur("duration_ms", res.Duration).
			Str("reason", res.Reason).Msg("verification check")
		results = append(results, res)
	}
	return results
}

// Check runs one check against host h (reached through t for command
// checks), retrying up to c.Retries extra times, c.Interval apart.
//
// A check rendered with a decrypted variable may quote it (a URL, a
// command): its name, label and reason are hidden with the host's secret
// values from the start, so that neither progress events (sent after each
// attempt) nor logs, labels and reports see them.
func (r *Runner) Check(ctx context.Context, c config.Check, h *config.Host, t targets.Transport) (res Result) {
	kind := c.Kind()
	red := hostRedactor(h)
	res = Result{Check: NameOn(h, c), Label: red.String(c.Name), Kind: kind, Host: c.Host}
	if res.Label == "" {
		res.Label = kind
		if kind == "" {
			res.Label = "invalid"
		}
	}
	if h != nil && h.Name != "" {
		res.Host = h.Name
	}
	start := r.clock.Now()
	defer func() { res.Duration, res.Reason = r.clock.Now().Sub(start), red.String(res.Reason) }()

	if _, ok := table()[kind]; !ok {
		res.Reason = "check has none of http, tcp, command, prometheus, junit set"
		return res
	}
	try, err := prepare(r, c, h, t, &res)
	if err != nil {
		res.Reason = fmt.Sprintf("invalid %s check: %v", kind, err)
		return res
	}
	timeout := orDefault(c.Timeout.D(), DefaultTimeout)
	interval := orDefault(c.Interval.D(), DefaultInterval)
	retries := max(c.Retries, 0)
	hook, _ := ctx.Value(attemptsKey{}).(func(Attempt))
	// report tells the hook about the attempt that ran; of is the most
	// attempts that may run, the attempt's own number when it is the last.
	report := func(of int) {
		if hook != nil {
			hook(Attempt{Check: res.Check, Host: res.Host, N: res.Attempts, Of: of, OK: res.OK})
		}
	}
	for i := 0; i <= retries; i++ {
		if i > 0 {
			if err := r.clock.Sleep(ctx, interval); err != nil {
				res.Reason += fmt.Sprintf(" (stopped before attempt %d: %v)", i+1, err)
				return res
			}
		}
		res.Attempts++
		actx, cancel := context.WithTimeout(ctx, timeout)
		okReason, err := safely(actx, try)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err == nil {
			res.OK, res.Reason = true, okReason
			report(retries + 1)
			return res
		}
		res.Reason = err.Error()
		if timedOut {
			res.Reason = fmt.Sprintf("no answer within %s: %v", timeout, err)
		}
		if ctx.Err() != nil {
			report(res.Attempts)
			return res
		}
		report(retries + 1)
	}
	return res
}

// Validate reports what is wrong with a check without running it: no
// kind, an unparsable URL or address, a bad regular expression or
// operator, a missing Prometheus server. `driftless validate` can call it
// for every check of every host.
func Validate(c config.Check) error {
	if _, ok := table()[c.Kind()]; !ok {
		return errors.New("check has none of http, tcp, command, prometheus, junit set")
	}
	if _, err := prepare(&Runner{}, c, nil, nil, &Result{}); err != nil {
		return fmt.Errorf("invalid %s check %s: %w", c.Kind(), Name(c), err)
	}
	return nil
}

// Name is how a check is called in results and logs: its name, or
// "<kind>:<target>". Metrics use Result.Label, which does not vary per host.
func Name(c config.Check) string {
	if c.Name != "" {
		return c.Name
	}
	kind := c.Kind()
	switch kind {
	case "http":
		return kind + ":" + redact.URL(c.HTTP)
	case "tcp":
		return kind + ":" + c.TCP
	case "command":
		return kind + ":" + c.Command
	case "prometheus":
		return kind + ":" + c.Prometheus
	case "junit":
		return kind + ":" + c.JUnit
	}
	return "invalid"
}

// NameOn is Name as it may be shown for a check rendered for host h:
// with h's secret values hidden (a template may have written one into its
// name, its URL or its command). Results, progress events and metric
// labels use it.
func NameOn(h *config.Host, c config.Check) string {
	return hostRedactor(h).String(Name(c))
}

// hostRedactor hides h's secret values; h may be nil.
func hostRedactor(h *config.Host) redact.Redactor {
	if h == nil {
		return redact.New()
	}
	return redact.New(h.SecretValues...)
}

// safely runs one attempt, turning a panic into a failed attempt: a bug
// in one check must not take the daemon down in the middle of a rollout.
func safely(ctx context.Context, try attempt) (okReason string, err error) {
	defer func() {
		if p := recover(); p != nil {
			okReason, err = "", fmt.Errorf("check panicked: %v", p)
		}
	}()
	return try(ctx)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
