package webhook

import (
	"fmt"
	"net/http"

	"github.com/driftless/driftless/sources"
)

// VerifyGitea checks the bare hex HMAC-SHA256 that Gitea, Forgejo and Gogs
// send. Forgejo and Gitea send the same MAC under several names; the first
// present one is checked, since they all carry the same value.
func VerifyGitea(h http.Header, body, secret []byte) error {
	return checkHexHMAC(firstHeader(h, "X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature"), body, secret)
}

// giteaRepo is the repository object of Gitea, Forgejo and Gogs payloads.
type giteaRepo struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
}

// giteaPayload holds the fields driftless reads from push and pull request
// payloads of Gitea, Forgejo and Gogs.
type giteaPayload struct {
	Ref         string    `json:"ref"`
	After       string    `json:"after"`
	Action      string    `json:"action"`
	Number      int       `json:"number"`
	Repository  giteaRepo `json:"repository"`
	PullRequest *struct {
		Number     int    `json:"number"`
		Merged     bool   `json:"merged"`
		BaseBranch string `json:"base_branch"`
		Head       struct {
			SHA  string `json:"sha"`
			Repo *struct {
				FullName string `json:"full_name"`
			} `json:"repo"`
		} `json:"head"`
		User struct {
			Login    string `json:"login"`
			Username string `json:"username"`
		} `json:"user"`
		Base struct {
			Ref string `json:"ref"`
		} `json:"base"`
	} `json:"pull_request"`
	// Issue, Comment and IsPull describe an issue_comment delivery.
	Issue *struct {
		Number      int       `json:"number"`
		PullRequest *struct{} `json:"pull_request"`
	} `json:"issue"`
	Comment struct {
		Body string `json:"body"`
		User struct {
			Login    string `json:"login"`
			UserName string `json:"username"`
		} `json:"user"`
	} `json:"comment"`
	IsPull bool `json:"is_pull"`
}

// ParseGitea turns a Gitea, Forgejo or Gogs delivery into an event. The
// provider is named after the most specific event header present: Forgejo
// also sends Gitea's headers, and Gitea also sends Gogs's.
func ParseGitea(h http.Header, body []byte) (sources.Event, error) {
	ev := sources.Event{}
	var name string
	switch {
	case h.Get("X-Forgejo-Event") != "":
		ev.Provider, name = "forgejo", h.Get("X-Forgejo-Event")
	case h.Get("X-Gitea-Event") != "":
		ev.Provider, name = "gitea", h.Get("X-Gitea-Event")
	case h.Get("X-Gogs-Event") != "":
		ev.Provider, name = "gogs", h.Get("X-Gogs-Event")
	default:
		return sources.Event{Provider: "gitea"}, fmt.Errorf("%w: no X-Gitea-Event, X-Forgejo-Event or X-Gogs-Event header", ErrBadPayload)
	}
	ev.Kind = name
	ev.DeliveryID = firstHeader(h, "X-Forgejo-Delivery", "X-Gitea-Delivery", "X-Gogs-Delivery")
	payload, err := payloadOf(h, body)
	if err != nil {
		return ev, err
	}
	var p giteaPayload
	if err := decode(payload, &p); err != nil {
		return ev, fmt.Errorf("parse %s %s: %w", ev.Provider, name, err)
	}
	ev.Repository = p.Repository.FullName
	ev.CloneURLs = urls(p.Repository.CloneURL, p.Repository.SSHURL)
	switch name {
	case "push":
		if p.Ref == "" {
			return ev, fmt.Errorf("parse %s push: %w: no ref", ev.Provider, ErrBadPayload)
		}
		ev = pushEvent(ev, p.Ref, p.After, false)
	case "pull_request", "pull_request_sync":
		if p.PullRequest == nil {
			return ev, fmt.Errorf("parse %s %s: %w: no pull_request object", ev.Provider, name, ErrBadPayload)
		}
		ev.Kind = KindPullRequest
		ev.PullRequest = p.Number
		if ev.PullRequest == 0 {
			ev.PullRequest = p.PullRequest.Number
		}
		ev.Action = giteaAction(p.Action)
		ev.Merged = p.PullRequest.Merged
		ev.Commit = p.PullRequest.Head.SHA
		head := ""
		if p.PullRequest.Head.Repo != nil {
			head = p.PullRequest.Head.Repo.FullName
		}
		ev.Fork = isFork(head, ev.Repository)
		ev.Author = p.PullRequest.User.Login
		if ev.Author == "" {
			ev.Author = p.PullRequest.User.Username
		}
		ev.BaseRef = p.PullRequest.Base.Ref
		if ev.BaseRef == "" {
			ev.BaseRef = p.PullRequest.BaseBranch
		}
	case "issue_comment", "pull_request_comment":
		if p.Issue == nil || !p.IsPull && p.Issue.PullRequest == nil {
			break // a comment on an issue: acknowledged, not acted on
		}
		ev.Kind, ev.Action = KindComment, p.Action
		ev.PullRequest = p.Issue.Number
		ev.Login = p.Comment.User.Login
		if ev.Login == "" {
			ev.Login = p.Comment.User.UserName
		}
		ev.Comment = p.Comment.Body
	}
	return finish(ev)
}

// giteaAction maps Gitea's past-tense "synchronized" to GitHub's word; the
// other actions already match.
func giteaAction(a string) string {
	if a == "synchronized" {
		return ActionSynchronize
	}
	return a
}

// giteaPullRef is the ref under which Gitea, Forgejo and Gogs publish pull
// request n's head.
func giteaPullRef(n int) string { return fmt.Sprintf("refs/pull/%d/head", n) }
