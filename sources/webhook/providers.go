package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/segmentio/encoding/json"

	"github.com/driftless/driftless/sources"
)

// Errors a signature check returns. The handler answers each with 401; the
// distinction is for logs and tests.
var (
	// ErrMissingSignature means the request carried no signature at all.
	ErrMissingSignature = errors.New("missing signature")
	// ErrBadSignature means the signature did not match the body.
	ErrBadSignature = errors.New("signature does not match")
	// ErrSHA1Refused means only a legacy SHA-1 signature was sent.
	ErrSHA1Refused = errors.New("only a SHA-1 signature was sent; configure the sender to send X-Hub-Signature-256")
	// ErrBadPayload means the body is not a payload of the announced event.
	ErrBadPayload = errors.New("bad payload")
)

// Normalised event kinds. Other events keep the sender's raw event name and
// are acknowledged and ignored.
const (
	KindPush        = "push"
	KindTagPush     = "tag_push"
	KindPullRequest = "pull_request"
	KindPing        = "ping"
	// KindComment is a new comment on a pull request (GitHub's and
	// Gitea's issue_comment, GitLab's Note Hook on a merge request).
	KindComment = "comment"
)

// maxComment bounds the comment text an event carries: commands are short.
const maxComment = 4096

// Normalised pull request actions.
const (
	ActionOpened      = "opened"
	ActionSynchronize = "synchronize"
	ActionReopened    = "reopened"
	ActionClosed      = "closed"
)

// ParseFunc turns one delivery into an event. It never sees the secret and
// must not put the body into its errors, since some senders include the
// secret in the body.
type ParseFunc func(header http.Header, body []byte) (sources.Event, error)

// VerifyFunc checks a delivery's signature against the secret.
type VerifyFunc func(header http.Header, body, secret []byte) error

// Secrets holds the secret of each provider, mirroring config.Webhooks. An
// empty secret makes its provider refuse every request. Gitea's secret also
// serves Forgejo and Gogs, which sign the same way.
type Secrets struct {
	GitHub    []byte
	GitLab    []byte
	Gitea     []byte
	Bitbucket []byte
	Generic   []byte
}

// provider is one row of the table: an endpoint name, its parser, its
// signature check, where its secret lives and under which ref the sender
// publishes a pull request's head.
type provider struct {
	name  string
	parse ParseFunc
	// parseAll, when set, is used instead of parse by the handler: for a
	// sender whose one delivery can report several changed refs.
	parseAll func(header http.Header, body []byte) ([]sources.Event, error)
	verify   VerifyFunc
	secret   func(Secrets) []byte
	// pullRef is the ref of pull request n's head on the Git server
	// (sources.Event.PullRef); nil for a sender that publishes none
	// (Bitbucket) or has no pull requests (generic).
	pullRef func(n int) string
}

// events parses a delivery into its events, always at least one (the
// partial event of a refused delivery labels its metric and log line).
// Each event about a pull request gets the provider's pull request ref.
func (p provider) events(h http.Header, body []byte) ([]sources.Event, error) {
	var evs []sources.Event
	var err error
	if p.parseAll != nil {
		evs, err = p.parseAll(h, body)
	} else {
		var ev sources.Event
		ev, err = p.parse(h, body)
		evs = []sources.Event{ev}
	}
	for i := range evs {
		if p.pullRef != nil && evs[i].PullRequest > 0 {
			evs[i].PullRef = p.pullRef(evs[i].PullRequest)
		}
	}
	return evs, err
}

// providers is the one table of webhook providers. A new provider is a new
// file with a parser, a signature check and its pull request ref, plus
// one row here. It is built
// by a function rather than held in a package variable so that the generic
// provider's configured header stays a value passed in.
func providers(genericHeader string) map[string]provider {
	gitea := func(s Secrets) []byte { return s.Gitea }
	rows := []provider{
		{name: "github", parse: ParseGitHub, verify: VerifyGitHub, secret: func(s Secrets) []byte { return s.GitHub }, pullRef: githubPullRef},
		{name: "gitlab", parse: ParseGitLab, verify: VerifyGitLab, secret: func(s Secrets) []byte { return s.GitLab }, pullRef: gitlabPullRef},
		{name: "gitea", parse: ParseGitea, verify: VerifyGitea, secret: gitea, pullRef: giteaPullRef},
		{name: "forgejo", parse: ParseGitea, verify: VerifyGitea, secret: gitea, pullRef: giteaPullRef},
		{name: "gogs", parse: ParseGitea, verify: VerifyGitea, secret: gitea, pullRef: giteaPullRef},
		// Bitbucket publishes no pull request ref: its events name the
		// source branch (Event.HeadRef) and the head commit instead.
		{name: "bitbucket", parse: ParseBitbucket, parseAll: ParseBitbucketAll, verify: VerifyBitbucket, secret: func(s Secrets) []byte { return s.Bitbucket }},
		// The generic provider sends pushes only.
		{name: "generic", parse: ParseGeneric, verify: VerifyGeneric(genericHeader), secret: func(s Secrets) []byte { return s.Generic }},
	}
	table := make(map[string]provider, len(rows))
	for _, p := range rows {
		table[p.name] = p
	}
	return table
}

// ProviderNames lists the endpoints served under /hooks/{provider}, sorted.
func ProviderNames() []string {
	return slices.Sorted(maps.Keys(providers("")))
}

// checkHexHMAC compares a hex HMAC-SHA256 of body (an optional "sha256="
// prefix removed) with the one computed from secret, in constant time.
func checkHexHMAC(value string, body, secret []byte) error {
	value = strings.TrimSpace(value)
	if value == "" {
		return ErrMissingSignature
	}
	value = strings.TrimPrefix(value, "sha256=")
	got, err := hex.DecodeString(value)
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// SignHex returns the bare hex HMAC-SHA256 of body under secret, as Gitea,
// Gogs and generic senders send it; tests and Go senders use it to sign.
func SignHex(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// decode unmarshals a payload. Its errors deliberately do not wrap the JSON
// decoder's, whose messages can quote parts of the body (a number, a
// character), and the body may hold a secret.
func decode(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: invalid JSON at byte %d", ErrBadPayload, syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: field %q has the wrong type", ErrBadPayload, typ.Field)
	default:
		return fmt.Errorf("%w: invalid JSON", ErrBadPayload)
	}
}

// isZeroCommit reports whether c is all zeros, which senders put as the new
// commit of a deleted ref.
func isZeroCommit(c string) bool {
	return c != "" && strings.Trim(c, "0") == ""
}

// refKind tells a tag push from a branch push by the full ref name.
func refKind(ref string) string {
	if strings.HasPrefix(ref, "refs/tags/") {
		return KindTagPush
	}
	return KindPush
}

// pushEvent fills the fields every push shares: the kind from the ref, and
// Deleted with an empty commit when the new commit is all zeros.
func pushEvent(ev sources.Event, ref, after string, deleted bool) sources.Event {
	ev.Kind = refKind(ref)
	ev.Ref = ref
	ev.Commit = after
	if deleted || isZeroCommit(after) {
		ev.Deleted = true
		ev.Commit = ""
	}
	return ev
}

// finish checks what a parser extracted before it leaves the package: a
// push names a full ref, and commits and refs are plain text without
// spaces or control characters, because the Git source hands them to Git.
// Errors name the field, never its value.
func finish(ev sources.Event) (sources.Event, error) {
	if len(ev.Kind) > 64 || strings.ContainsFunc(ev.Kind, unicode.IsControl) {
		return ev, fmt.Errorf("parse %s event: %w: the event name is malformed", ev.Provider, ErrBadPayload)
	}
	if (ev.Kind == KindPush || ev.Kind == KindTagPush) && !strings.HasPrefix(ev.Ref, "refs/") {
		return ev, fmt.Errorf("parse %s %s: %w: ref is not a full ref name", ev.Provider, ev.Kind, ErrBadPayload)
	}
	if ev.Commit != "" && !isHex(ev.Commit) {
		return ev, fmt.Errorf("parse %s %s: %w: commit is not a hex commit id", ev.Provider, ev.Kind, ErrBadPayload)
	}
	if ev.HeadRef != "" && !strings.HasPrefix(ev.HeadRef, "refs/") {
		return ev, fmt.Errorf("parse %s %s: %w: head ref is not a full ref name", ev.Provider, ev.Kind, ErrBadPayload)
	}
	if len(ev.Comment) > maxComment {
		ev.Comment = ev.Comment[:maxComment]
	}
	for _, s := range []string{ev.Ref, ev.BaseRef, ev.HeadRef, ev.Repository, ev.DeliveryID, ev.Login} {
		if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return ev, fmt.Errorf("parse %s %s: %w: a name holds spaces or control characters", ev.Provider, ev.Kind, ErrBadPayload)
		}
	}
	return ev, nil
}

// isFork reports whether a pull request whose head is in the repository
// named head comes from another repository than base; an unnamed head
// counts as a fork, since nothing shows it is not one.
func isFork(head, base string) bool {
	return head == "" || !strings.EqualFold(head, base)
}

// isHex reports whether s is a commit id: 4 to 64 hex digits (SHA-1 or
// SHA-256, possibly abbreviated as Bitbucket does for pull requests).
func isHex(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	_, err := hex.DecodeString(s + s[:len(s)%2])
	return err == nil
}

// urls keeps the non-empty URLs, in order, without repeats.
func urls(in ...string) []string {
	var out []string
	for _, u := range in {
		if u == "" {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == u
		}
		if !dup {
			out = append(out, u)
		}
	}
	return out
}

// firstHeader returns the first non-empty value among the named headers.
func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// payloadOf returns the JSON payload of a body: the body itself, or the
// "payload" field of a form-encoded body (GitHub and Gitea can send both).
// The signature is always computed over the raw body, not this.
func payloadOf(h http.Header, body []byte) ([]byte, error) {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Content-Type"), ";", 2)[0]))
	if ct != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: form body does not parse", ErrBadPayload)
	}
	p := form.Get("payload")
	if p == "" {
		return nil, fmt.Errorf("%w: form body has no payload field", ErrBadPayload)
	}
	return []byte(p), nil
}
