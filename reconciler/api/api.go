package api

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// Operator is what the HTTP API and the status page need of the
// reconciler: reading state and history, and the two manual operations.
// The reconciler implements it; the narrow interface keeps the API testable
// on its own.
type Operator interface {
	Environments() []status.EnvStatus
	Environment(name string) (status.EnvStatus, bool)
	History(name string, limit int) ([]store.Run, error)
	Sync(ctx context.Context, name string) error
	ForceSync(ctx context.Context, name string) error
	Rollback(ctx context.Context, name, to string) error
	Decide(ctx context.Context, name, rev string, d store.Decision) (store.Decision, error)
}

// API limits and defaults.
const (
	// DefaultHistoryLimit is how many runs a history request returns
	// when it names no limit.
	DefaultHistoryLimit = 100
	// MaxHistoryLimit caps the limit a client may ask for, so one request
	// cannot make the daemon read and encode an unbounded history.
	MaxHistoryLimit = store.HistoryRetention
	// maxBodyBytes bounds a POST body; the only body is {"to": "<commit>"}.
	maxBodyBytes = 64 << 10
)

// Options are the API's dependencies and settings.
type Options struct {
	// Reconciler answers the reads and runs sync and rollback.
	Reconciler Operator
	// Token is a bearer token with the scopes sync and rollback. It is
	// read at each request, so a rotated token file takes effect without
	// a restart.
	Token config.Secret
	// Tokens are scoped tokens, known by their SHA-256. With neither
	// Token nor Tokens, every mutating endpoint is refused.
	Tokens []config.APIToken
	Logger zerolog.Logger
	// OperationTimeout bounds one sync or rollback (0: 10 minutes). The
	// operation does not end when the client goes away: a rollout cut in
	// the middle would leave its hosts between two revisions until the
	// next pass recovers them.
	OperationTimeout time.Duration
	// Context, when set, is the daemon's lifetime: sync and rollback run
	// under it instead of the request's context, so stopping the daemon
	// interrupts them as it interrupts every other rollout (the rollout
	// journal takes over at the next start) while a client going away
	// does not (nil: context.Background()).
	Context context.Context
	// Now is the clock of the status page (time.Now when nil).
	Now func() time.Time
	// Refresh is how often the status page reloads itself (0: 10 s).
	Refresh time.Duration
	// Progress is the log of progress events the progress endpoint reads
	// (nil: it answers no events).
	Progress *status.ProgressLog
	// Pulled keeps the reports of pull-mode hosts (nil: reports are
	// refused and none are listed).
	Pulled *status.PulledHosts
}

// API serves /api/v1/... and the status page:
//
//	GET  /api/v1/environments                 200 [EnvStatus...] (never null)
//	GET  /api/v1/environments/{name}          200 EnvStatus, 404
//	GET  /api/v1/environments/{name}/history  ?limit=N (default 100, max 10000): 200 [Run...] newest first, 400, 404
//	GET  /api/v1/environments/{name}/progress ?after=N: 200 {"events": [Event...] after N, oldest first, "next": N}, 400, 404
//	POST /api/v1/environments/{name}/sync     body {"force": true} optional: 200 EnvStatus after the run, 409 window closed
//	POST /api/v1/environments/{name}/approve  body {"revision": "<commit>"}: 200 {decision, status}, 409 not waiting
//	POST /api/v1/environments/{name}/reject   the same, for a rejection
//	POST /api/v1/environments/{name}/rollback body {"to": "<commit>"} optional: 200 EnvStatus after the run
//	GET  /api/v1/pulled                       200 [PulledHost...] by host (never null)
//	POST /api/v1/pulled/{host}                body PulledHost of that host: 204 (scope report)
//	GET  /                                     the status page of every environment
//	GET  /environments/{name}                  one environment's page (reports link there)
//	GET  /environments/{name}/diffs            the same with each change's diff: API token as bearer or basic-auth password
//
// Every POST needs "Authorization: Bearer <token>" of a token with the
// endpoint's scope (sync; rollback; approve for approve and reject; report for a pull-mode host's report): 403
// when no token is configured or the token lacks the scope, 401 with
// WWW-Authenticate when it is missing or wrong, 404
// for an unknown environment, 400 for a malformed rollback body, 409 when
// there is nothing to roll back to, 500 with the environment's state in
// "status" when the run failed. Every error body is {"error": "..."}.
type API struct {
	opts  Options
	log   zerolog.Logger
	now   func() time.Time
	pages *template.Template
}

// New builds the API; Register puts it on a mux.
func New(opts Options) *API {
	if opts.OperationTimeout <= 0 {
		opts.OperationTimeout = 10 * time.Minute
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &API{opts: opts, log: opts.Logger, now: now, pages: parseStatusTemplates()}
}

// Register adds the API's and the status page's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/environments", a.list)
	mux.HandleFunc("GET /api/v1/environments/{name}", a.get)
	mux.HandleFunc("GET /api/v1/environments/{name}/history", a.history)
	mux.HandleFunc("GET /api/v1/environments/{name}/progress", a.progress)
	mux.HandleFunc("POST /api/v1/environments/{name}/sync", a.authorized(config.ScopeSync, a.sync))
	mux.HandleFunc("POST /api/v1/environments/{name}/rollback", a.authorized(config.ScopeRollback, a.rollback))
	mux.HandleFunc("POST /api/v1/environments/{name}/approve", a.authorized(config.ScopeApprove, a.approve))
	mux.HandleFunc("POST /api/v1/environments/{name}/reject", a.authorized(config.ScopeApprove, a.reject))
	mux.HandleFunc("GET /api/v1/pulled", a.pulled)
	mux.HandleFunc("POST /api/v1/pulled/{host}", a.authorized(config.ScopeReport, a.report))
	mux.HandleFunc("GET /{$}", a.statusPage)
	mux.HandleFunc("GET /environments/{name}", a.envPage)
	mux.HandleFunc("GET /environments/{name}/diffs", a.diffsPage)
}

// ErrorAnswer is the body of every error answer.
type ErrorAnswer struct {
	Error string `json:"error"`
	// Status is the environment's state after a sync or rollback that
	// ran and failed, so a client sees where it was left.
	Status *status.EnvStatus `json:"status,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// State changes at any moment: no cache may keep an old answer.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// "->" in a diff stays "->": the answer is JSON with nosniff, never HTML.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, ErrorAnswer{Error: fmt.Sprintf(format, args...)})
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	envs := a.opts.Reconciler.Environments()
	if envs == nil {
		envs = []status.EnvStatus{}
	}
	writeJSON(w, http.StatusOK, envs)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, ok := a.opts.Reconciler.Environment(name)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// parseLimit reads ?limit=N: absent is DefaultHistoryLimit, anything but
// a positive integer is an error, and large values are capped.
func parseLimit(v string) (int, error) {
	if v == "" {
		return DefaultHistoryLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("limit must be a positive integer, got %q", v)
	}
	return min(n, MaxHistoryLimit), nil
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, err := parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if _, ok := a.opts.Reconciler.Environment(name); !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	runs, err := a.opts.Reconciler.History(name, limit)
	if err != nil {
		a.log.Error().Err(err).Str("environment", name).Msg("cannot read history")
		writeError(w, http.StatusInternalServerError, "read history of %s: %v", name, err)
		return
	}
	if runs == nil {
		runs = []store.Run{}
	}
	// The checkout folder is the daemon's own business: it is not shown to
	// whoever can reach the unauthenticated API; diffs only to a holder of
	// the API token.
	diffs := a.tokenHolder(r)
	for i := range runs {
		runs[i].Revision.Dir = ""
		if !diffs {
			hideDiffs(runs[i].Changed)
		}
	}
	writeJSON(w, http.StatusOK, runs)
}

// ProgressAnswer is the answer of GET .../progress.
type ProgressAnswer struct {
	// Events are the environment's events after the one asked for, oldest
	// first; the log keeps the newest DefaultProgressSize of them.
	Events []status.Event `json:"events"`
	// Next is the number to ask after next time.
	Next uint64 `json:"next"`
}

// progress answers the environment's progress events after ?after=N
// (default 0: all the log keeps), for a client following a sync or a
// rollback: it reads "next" first, starts the operation, then asks again
// with after=next until the operation answered.
func (a *API) progress(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after must be an event number, got %q", v)
			return
		}
		after = n
	}
	if _, ok := a.opts.Reconciler.Environment(name); !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	ans := ProgressAnswer{Events: []status.Event{}}
	if a.opts.Progress != nil {
		ans.Events, ans.Next = a.opts.Progress.Since(name, after)
		if ans.Events == nil {
			ans.Events = []status.Event{}
		}
	}
	writeJSON(w, http.StatusOK, ans)
}
