package webhook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v60/github"
	"github.com/segmentio/encoding/json"

	"github.com/driftless/driftless/sources"
)

// VerifyGitHub checks X-Hub-Signature-256 ("sha256=<hex>") with go-github.
// A request signed only with the legacy SHA-1 X-Hub-Signature is refused:
// SHA-1 is no longer a safe MAC hash, and every current sender also sends
// the SHA-256 header.
func VerifyGitHub(h http.Header, body, secret []byte) error {
	sig := strings.TrimSpace(h.Get(github.SHA256SignatureHeader))
	if sig == "" {
		legacy := strings.TrimSpace(h.Get(github.SHA1SignatureHeader))
		switch {
		case isSHA1Signature(legacy):
			return ErrSHA1Refused
		case legacy != "":
			// Not a SHA-1 signature either: saying "only SHA-1 was sent"
			// would send an operator after the wrong setting.
			return fmt.Errorf("%w: no X-Hub-Signature-256, and X-Hub-Signature is not a signature", ErrMissingSignature)
		}
		return ErrMissingSignature
	}
	if !strings.HasPrefix(sig, "sha256=") {
		return ErrBadSignature
	}
	// go-github's error quotes the signature it was sent, which is
	// attacker-chosen text; it is dropped so that logs stay clean.
	if err := github.ValidateSignature(sig, body, secret); err != nil {
		return ErrBadSignature
	}
	return nil
}

// isSHA1Signature reports whether s has the shape of a legacy signature:
// "sha1=" and 40 hex digits.
func isSHA1Signature(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "sha1=")
	return ok && len(hexPart) == 40 && isHex(hexPart)
}

// ParseGitHub turns a GitHub delivery into an event: push (tag_push for a
// tag), pull_request and ping are normalised; any other event keeps its
// name and only its repository is read.
func ParseGitHub(h http.Header, body []byte) (sources.Event, error) {
	name := h.Get(github.EventTypeHeader)
	ev := sources.Event{Provider: "github", Kind: name, DeliveryID: h.Get(github.DeliveryIDHeader)}
	if name == "" {
		return ev, fmt.Errorf("%w: no %s header", ErrBadPayload, github.EventTypeHeader)
	}
	payload, err := payloadOf(h, body)
	if err != nil {
		return ev, err
	}
	switch name {
	case "push":
		return parseGitHubPush(ev, payload)
	case "ping", "pull_request", "issue_comment":
	default:
		// Events driftless does not act on are acknowledged; the repository
		// is still read so the log line says where it came from.
		var other struct {
			Repository struct {
				FullName string `json:"full_name"`
				CloneURL string `json:"clone_url"`
				SSHURL   string `json:"ssh_url"`
			} `json:"repository"`
		}
		if err := decode(payload, &other); err != nil {
			return ev, fmt.Errorf("parse github %s: %w", name, err)
		}
		ev.Repository = other.Repository.FullName
		ev.CloneURLs = urls(other.Repository.CloneURL, other.Repository.SSHURL)
		return finish(ev)
	}
	parsed, err := github.ParseWebHook(name, payload)
	if err != nil {
		// go-github's decode errors can quote the body, so they are not wrapped.
		return ev, fmt.Errorf("parse github %s: %w: payload does not decode", name, ErrBadPayload)
	}
	switch e := parsed.(type) {
	case *github.PingEvent:
		// An organisation's ping has no repository; that is fine.
		ev.Kind = KindPing
		r := e.GetRepo()
		ev.Repository = r.GetFullName()
		ev.CloneURLs = urls(r.GetCloneURL(), r.GetSSHURL())
	case *github.PullRequestEvent:
		r := e.GetRepo()
		pr := e.GetPullRequest()
		ev.Kind = KindPullRequest
		ev.Repository = r.GetFullName()
		ev.CloneURLs = urls(r.GetCloneURL(), r.GetSSHURL())
		ev.PullRequest = e.GetNumber()
		if ev.PullRequest == 0 {
			ev.PullRequest = pr.GetNumber()
		}
		ev.Action = e.GetAction()
		ev.Merged = pr.GetMerged()
		ev.Commit = pr.GetHead().GetSHA()
		ev.BaseRef = pr.GetBase().GetRef()
		ev.Fork = isFork(pr.GetHead().GetRepo().GetFullName(), ev.Repository)
		ev.Author = pr.GetUser().GetLogin()
	case *github.IssueCommentEvent:
		r := e.GetRepo()
		ev.Repository = r.GetFullName()
		ev.CloneURLs = urls(r.GetCloneURL(), r.GetSSHURL())
		if !e.GetIssue().IsPullRequest() {
			break // a comment on an issue: acknowledged, not acted on
		}
		ev.Kind, ev.Action = KindComment, e.GetAction()
		ev.PullRequest = e.GetIssue().GetNumber()
		ev.Login = e.GetComment().GetUser().GetLogin()
		ev.Comment = e.GetComment().GetBody()
	}
	return finish(ev)
}

// githubPush holds the fields of a GitHub push that driftless reads. The
// push is the event every commit sends, so it is decoded into these alone
// rather than into go-github's whole PushEvent, whose hundreds of fields
// made decoding most of the cost of a delivery. The field names and types
// are go-github's.
type githubPush struct {
	Ref        *string `json:"ref"`
	After      string  `json:"after"`
	Deleted    bool    `json:"deleted"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
}

// parseGitHubPush reads a push event's payload.
func parseGitHubPush(ev sources.Event, payload []byte) (sources.Event, error) {
	var p githubPush
	if err := json.Unmarshal(payload, &p); err != nil {
		// Decode errors can quote the body, so they are not wrapped.
		return ev, fmt.Errorf("parse github push: %w: payload does not decode", ErrBadPayload)
	}
	ev.Repository = p.Repository.FullName
	ev.CloneURLs = urls(p.Repository.CloneURL, p.Repository.SSHURL)
	if p.Ref == nil {
		return ev, fmt.Errorf("parse github push: %w: no ref", ErrBadPayload)
	}
	return finish(pushEvent(ev, *p.Ref, p.After, p.Deleted))
}

// githubPullRef is the ref under which GitHub publishes pull request n's
// head, in the repository the pull request targets (also for a fork's).
func githubPullRef(n int) string { return fmt.Sprintf("refs/pull/%d/head", n) }
