package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/sources"
)

// actionable reports whether an event can change what driftless deploys or
// previews: a push, or a pull request opened, updated, reopened or closed.
func actionable(ev sources.Event) bool {
	switch ev.Kind {
	case KindPush, KindTagPush:
		return true
	case KindPullRequest:
		switch ev.Action {
		case ActionOpened, ActionSynchronize, ActionReopened, ActionClosed:
			return true
		}
	case KindComment:
		// Only a new comment: an edited one would approve whatever the
		// pull request's head is at the time of the edit.
		return ev.Action == "created"
	}
	return false
}

// eventLabel keeps the event label to a fixed set of values.
func eventLabel(kind string) string {
	switch kind {
	case KindPush, KindTagPush, KindPullRequest, KindPing, KindComment:
		return kind
	case "":
		return "unknown"
	}
	return "other"
}

// deliveryKeys returns the keys under which a delivery is remembered: the
// sender's delivery id and the body's hash. Signatures cover the body but
// not the headers, so a captured request replayed with a new delivery id is
// still caught by its body; and a sender without ids is covered at all. An
// overlong id is hashed so that a sender cannot make the store hold large
// keys.
func deliveryKeys(id string, body []byte) []string {
	sum := sha256.Sum256(body)
	keys := []string{"body-sha256:" + hex.EncodeToString(sum[:])}
	switch {
	case id == "":
	case len(id) > maxDeliveryID:
		sum := sha256.Sum256([]byte(id))
		keys = append(keys, "id-sha256:"+hex.EncodeToString(sum[:]))
	default:
		keys = append(keys, id)
	}
	return keys
}

// log writes one line per request. It never logs the body or any header
// value before the signature is verified.
func (h *Handler) log(r *http.Request, o outcome) {
	var e *zerolog.Event
	switch o.result {
	case ResultAccepted:
		e = h.opts.Logger.Info()
	case ResultIgnored:
		e = h.opts.Logger.Info()
	case ResultError:
		e = h.opts.Logger.Error()
	default:
		e = h.opts.Logger.Warn()
	}
	e = e.Str("provider", o.provider).Str("event", o.event).Str("result", o.result).Int("status", o.status).
		Str("remote", r.RemoteAddr)
	if o.ev.Kind != "" {
		e = e.Str("kind", o.ev.Kind).Str("delivery", o.ev.DeliveryID).Str("repository", o.ev.Repository)
		if o.ev.Ref != "" {
			e = e.Str("ref", o.ev.Ref)
		}
		if o.ev.Commit != "" {
			e = e.Str("revision", sources.Revision{Commit: o.ev.Commit}.Short())
		}
		if o.ev.PullRequest != 0 {
			e = e.Int("pull_request", o.ev.PullRequest).Str("action", o.ev.Action)
		}
	}
	if o.err != nil {
		e = e.Err(o.err)
	}
	e.Msg("webhook " + o.result)
}
