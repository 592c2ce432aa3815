package reconciler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

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
	case errors.Is(err, ErrRemovedEnvironment):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error(), Status: &st})
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
