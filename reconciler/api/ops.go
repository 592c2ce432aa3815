package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// scopedHandler is a mutating handler; who names the token that was used.
type scopedHandler func(w http.ResponseWriter, r *http.Request, who string)

// legacyScopes are the scopes of api.token, the one unnamed token.
var legacyScopes = []string{config.ScopeSync, config.ScopeRollback}

// authorized wraps a mutating handler: it runs only with a configured
// bearer token that has scope. Tokens are compared by their SHA-256, each
// in constant time, so the answer's timing tells nothing about them.
func (a *API) authorized(scope string, next scopedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Token.IsZero() && len(a.opts.Tokens) == 0 {
			writeError(w, http.StatusForbidden, "no API token is configured (api.token or api.tokens in driftless.yaml): the mutating API is disabled")
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="driftless"`)
			writeError(w, http.StatusUnauthorized, "this endpoint needs an Authorization: Bearer <token> header")
			return
		}
		who, scopes, matched, err := a.tokenOf(got)
		if err != nil {
			a.log.Error().Err(err).Msg("cannot read the API token")
			writeError(w, http.StatusInternalServerError, "the daemon cannot read its API token; see its log")
			return
		}
		if !matched {
			a.log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("api request with a wrong token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="driftless", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "wrong API token")
			return
		}
		if !slices.Contains(scopes, scope) {
			a.log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Str("by", who).Str("scope", scope).Msg("api request without the scope it needs")
			writeError(w, http.StatusForbidden, "%s does not have the %s scope", who, scope)
			return
		}
		next(w, r, who)
	}
}

// tokenOf finds the configured token got is: api.token or one of
// api.tokens, with its name and scopes.
func (a *API) tokenOf(got string) (who string, scopes []string, matched bool, err error) {
	gh := sha256.Sum256([]byte(got))
	if !a.opts.Token.IsZero() {
		want, err := a.opts.Token.Read()
		if err != nil {
			return "", nil, false, err
		}
		wh := sha256.Sum256(want)
		if subtle.ConstantTimeCompare(gh[:], wh[:]) == 1 {
			who, scopes, matched = "token", legacyScopes, true
		}
	}
	for _, t := range a.opts.Tokens {
		wh, err := hex.DecodeString(strings.ToLower(t.SHA256))
		if err == nil && subtle.ConstantTimeCompare(gh[:], wh) == 1 && !matched {
			who, scopes, matched = "token:"+t.Name, t.Scopes, true
		}
	}
	return who, scopes, matched, nil
}

// tokenHolder reports whether the request carries one of the API tokens
// (any scope), as a bearer token (programs) or as the password of HTTP
// basic authentication (a browser, which asks for it without any script).
func (a *API) tokenHolder(r *http.Request) bool {
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		_, got, ok = r.BasicAuth()
	}
	if !ok || got == "" {
		return false
	}
	_, _, matched, err := a.tokenOf(got)
	if err != nil {
		a.log.Error().Err(err).Msg("cannot read the API token")
	}
	return matched
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
// Options.OperationTimeout and Context), bounded by the timeout.
func (a *API) operationContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.opts.Context, a.opts.OperationTimeout)
}

// syncRequest is the optional body of POST .../sync.
type syncRequest struct {
	// Force goes through a closed deploy window.
	Force bool `json:"force"`
}

func (a *API) sync(w http.ResponseWriter, r *http.Request, who string) {
	name := r.PathValue("name")
	var req syncRequest
	if !readBody(w, r, &req, `{"force": true|false}`) {
		return
	}
	if _, ok := a.opts.Reconciler.Environment(name); !ok {
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
		return
	}
	ctx, cancel := a.operationContext()
	defer cancel()
	a.log.Info().Str("environment", name).Str("remote", r.RemoteAddr).Str("by", who).Bool("force", req.Force).Msg("sync requested")
	if req.Force {
		a.finishOperation(w, name, a.opts.Reconciler.ForceSync(ctx, name))
		return
	}
	a.finishOperation(w, name, a.opts.Reconciler.Sync(ctx, name))
}

// readBody decodes an optional JSON body strictly into v; it answers 400
// or 413 itself and returns false when the body is not acceptable.
func readBody(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "read request body: %v", err)
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, "body must be %s", shape)
		return false
	}
	return true
}

// finishOperation answers a sync or rollback with the environment's state
// after it, or the error with that state attached.
func (a *API) finishOperation(w http.ResponseWriter, name string, err error) {
	st, ok := a.opts.Reconciler.Environment(name)
	switch {
	case errors.Is(err, status.ErrUnknownEnvironment) || !ok:
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
	case errors.Is(err, status.ErrRemovedEnvironment), errors.Is(err, status.ErrWindowClosed):
		writeJSON(w, http.StatusConflict, ErrorAnswer{Error: err.Error(), Status: &st})
	case err != nil:
		a.log.Error().Err(err).Str("environment", name).Msg("manual operation failed")
		writeJSON(w, http.StatusInternalServerError, ErrorAnswer{Error: err.Error(), Status: &st})
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

func (a *API) rollback(w http.ResponseWriter, r *http.Request, who string) {
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
	a.log.Info().Str("environment", name).Str("revision", kit.Short(to)).Str("remote", r.RemoteAddr).Str("by", who).Msg("rollback requested")
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
func rollbackTarget(runs []store.Run, prefix, applied string) string {
	for _, run := range runs {
		c := run.Revision.Commit
		if c == "" || (run.Result != status.ResultSuccess && run.Result != status.ResultNoop) {
			continue
		}
		if prefix != "" && strings.HasPrefix(c, prefix) || prefix == "" && c != applied {
			return c
		}
	}
	return ""
}

// decisionRequest is the body of POST .../approve and .../reject.
type decisionRequest struct {
	// Revision is the commit (7 characters at least) decided on.
	Revision string `json:"revision"`
}

// DecisionAnswer is the answer to an approval or a rejection.
type DecisionAnswer struct {
	Decision store.Decision   `json:"decision"`
	Status   status.EnvStatus `json:"status"`
}

func (a *API) approve(w http.ResponseWriter, r *http.Request, who string) { a.decide(w, r, who, true) }
func (a *API) reject(w http.ResponseWriter, r *http.Request, who string)  { a.decide(w, r, who, false) }

// decide records an approval or a rejection: 200 with the decision and
// the environment's state, 404 unknown environment, 409 when the revision
// is not the one held at the environment's gates.
func (a *API) decide(w http.ResponseWriter, r *http.Request, who string, approved bool) {
	name := r.PathValue("name")
	var req decisionRequest
	if !readBody(w, r, &req, `{"revision": "<commit>"}`) {
		return
	}
	d, err := a.opts.Reconciler.Decide(r.Context(), name, req.Revision, store.Decision{Approved: approved, By: who, Via: "api"})
	st, ok := a.opts.Reconciler.Environment(name)
	switch {
	case errors.Is(err, status.ErrUnknownEnvironment) || !ok:
		writeError(w, http.StatusNotFound, "unknown environment %q", name)
	case errors.Is(err, status.ErrNotAwaiting), errors.Is(err, status.ErrRemovedEnvironment):
		writeJSON(w, http.StatusConflict, ErrorAnswer{Error: err.Error(), Status: &st})
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
	default:
		a.log.Info().Str("environment", name).Str("revision", kit.Short(d.Commit)).Str("by", who).Bool("approved", approved).Msg("decision recorded")
		writeJSON(w, http.StatusOK, DecisionAnswer{Decision: d, Status: st})
	}
}
