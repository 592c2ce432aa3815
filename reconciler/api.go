package reconciler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
)

// Operator is what the HTTP API and the status page need of the
// reconciler: reading state and history, and the two manual operations.
// *Reconciler implements it; the narrow interface keeps the API testable
// on its own.
type Operator interface {
	Environments() []EnvStatus
	Environment(name string) (EnvStatus, bool)
	History(name string, limit int) ([]Run, error)
	Sync(ctx context.Context, name string) error
	Rollback(ctx context.Context, name, to string) error
}

var _ Operator = (*Reconciler)(nil)

// API limits and defaults.
const (
	// DefaultHistoryLimit is how many runs a history request returns
	// when it names no limit.
	DefaultHistoryLimit = 100
	// MaxHistoryLimit caps the limit a client may ask for, so one request
	// cannot make the daemon read and encode an unbounded history.
	MaxHistoryLimit = 10000
	// maxBodyBytes bounds a POST body; the only body is {"to": "<commit>"}.
	maxBodyBytes = 64 << 10
)

// APIOptions are the API's dependencies and settings.
type APIOptions struct {
	// Reconciler answers the reads and runs sync and rollback.
	Reconciler Operator
	// Token is the bearer token the mutating endpoints require. It is
	// read at each request, so a rotated token file takes effect without
	// a restart. When it is not configured, sync and rollback are refused.
	Token  config.Secret
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
}

// API serves /api/v1/... and the status page:
//
//	GET  /api/v1/environments                 200 [EnvStatus...] (never null)
//	GET  /api/v1/environments/{name}          200 EnvStatus, 404
//	GET  /api/v1/environments/{name}/history  ?limit=N (default 100, max 10000): 200 [Run...] newest first, 400, 404
//	POST /api/v1/environments/{name}/sync     200 EnvStatus after the run
//	POST /api/v1/environments/{name}/rollback body {"to": "<commit>"} optional: 200 EnvStatus after the run
//	GET  /                                     the status page of every environment
//	GET  /environments/{name}                  one environment's page (reports link there)
//
// Both POSTs need "Authorization: Bearer <token>": 403 when no token is
// configured, 401 with WWW-Authenticate when it is missing or wrong, 404
// for an unknown environment, 400 for a malformed rollback body, 409 when
// there is nothing to roll back to, 500 with the environment's state in
// "status" when the run failed. Every error body is {"error": "..."}.
type API struct {
	opts  APIOptions
	log   zerolog.Logger
	now   func() time.Time
	pages *template.Template
}

// NewAPI builds the API; Register puts it on a mux.
func NewAPI(opts APIOptions) *API {
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
	mux.HandleFunc("POST /api/v1/environments/{name}/sync", a.authorized(a.sync))
	mux.HandleFunc("POST /api/v1/environments/{name}/rollback", a.authorized(a.rollback))
	mux.HandleFunc("GET /{$}", a.statusPage)
	mux.HandleFunc("GET /environments/{name}", a.envPage)
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	// Status is the environment's state after a sync or rollback that
	// ran and failed, so a client sees where it was left.
	Status *EnvStatus `json:"status,omitempty"`
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
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	envs := a.opts.Reconciler.Environments()
	if envs == nil {
		envs = []EnvStatus{}
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
		runs = []Run{}
	}
	writeJSON(w, http.StatusOK, runs)
}

// authorized wraps a mutating handler: it runs only with the configured
// bearer token.
func (a *API) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Token.IsZero() {
			writeError(w, http.StatusForbidden, "no API token is configured (api.token in driftless.yaml): sync and rollback are disabled")
			return
		}
		want, err := a.opts.Token.Read()
		if err != nil {
			a.log.Error().Err(err).Msg("cannot read the API token")
			writeError(w, http.StatusInternalServerError, "the daemon cannot read its API token; see its log")
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="driftless"`)
			writeError(w, http.StatusUnauthorized, "this endpoint needs an Authorization: Bearer <token> header")
			return
		}
		// Hashing both sides first makes the comparison take the same
		// time whatever the lengths, so the answer's timing tells nothing
		// about the token.
		gh, wh := sha256.Sum256([]byte(got)), sha256.Sum256(want)
		if subtle.ConstantTimeCompare(gh[:], wh[:]) != 1 {
			a.log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("api request with a wrong token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="driftless", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "wrong API token")
			return
		}
		next(w, r)
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 6750 and RFC 9110).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// operationContext detaches an operation from the request (see
// APIOptions.OperationTimeout and Context), bounded by the timeout.
func (a *API) operationContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.opts.Context, a.opts.OperationTimeout)
}

func (a *API) sync(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.opts.Reconciler.Environment(name); !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	ctx, cancel := a.operationContext()
	defer cancel()
	a.log.Info().Str("environment", name).Str("remote", r.RemoteAddr).Msg("sync requested")
	a.finishOperation(w, name, a.opts.Reconciler.Sync(ctx, name))
}

// finishOperation answers a sync or rollback with the environment's state
// after it, or the error with that state attached.
func (a *API) finishOperation(w http.ResponseWriter, name string, err error) {
	st, ok := a.opts.Reconciler.Environment(name)
	switch {
	case errors.Is(err, ErrUnknownEnvironment) || !ok:
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
	case err != nil:
		a.log.Error().Err(err).Str("environment", name).Msg("manual operation failed")
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error(), Status: &st})
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// rollbackRequest is the optional body of POST .../rollback.
type rollbackRequest struct {
	// To is the commit (7 characters at least) to go back to; empty means
	// the newest successful revision other than the applied one.
	To string `json:"to"`
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "read request body: %v", err)
		return
	}
	want, err := parseRollback(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	st, ok := a.opts.Reconciler.Environment(name)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	runs, err := a.opts.Reconciler.History(name, 0)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read history of %s: %v", name, err)
		return
	}
	// Checking the history here answers "nothing to roll back to" as a
	// conflict, before the reconciler takes the environment's lock.
	to := rollbackTarget(runs, want, st.Applied)
	if to == "" {
		if want == "" {
			writeError(w, http.StatusConflict, "environment %s has no successful revision other than the applied one %.12s to roll back to", name, st.Applied)
		} else {
			writeError(w, http.StatusConflict, "environment %s has no successful run of commit %s in its history", name, want)
		}
		return
	}
	ctx, cancel := a.operationContext()
	defer cancel()
	a.log.Info().Str("environment", name).Str("revision", shortCommit(to)).Str("remote", r.RemoteAddr).Msg("rollback requested")
	a.finishOperation(w, name, a.opts.Reconciler.Rollback(ctx, name, to))
}

// parseRollback reads the body of a rollback request: empty, or
// {"to": "<commit>"} with a commit of 7 hex characters at least. It returns
// the commit in lower case ("" when none is named).
func parseRollback(body []byte) (string, error) {
	var req rollbackRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return "", fmt.Errorf(`body must be {"to": "<commit>"}: %w`, err)
		}
		if dec.More() {
			return "", errors.New(`body must be {"to": "<commit>"}: more than one JSON value`)
		}
	}
	to := strings.ToLower(strings.TrimSpace(req.To))
	if to != "" && (len(to) < 7 || strings.Trim(to, "0123456789abcdef") != "") {
		return "", fmt.Errorf("to must be a commit id of 7 hex characters at least, got %q", req.To)
	}
	return to, nil
}

// rollbackTarget returns the full commit a rollback goes to: the newest
// successful run of prefix when one is given, else the newest successful
// run of a commit other than applied. runs are newest first.
func rollbackTarget(runs []Run, prefix, applied string) string {
	for _, run := range runs {
		c := run.Revision.Commit
		if c == "" || (run.Result != ResultSuccess && run.Result != ResultNoop) {
			continue
		}
		if prefix != "" && strings.HasPrefix(c, prefix) || prefix == "" && c != applied {
			return c
		}
	}
	return ""
}
