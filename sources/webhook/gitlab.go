package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/driftless/driftless/sources"
)

// VerifyGitLab compares X-Gitlab-Token with the secret in constant time.
// GitLab sends the secret itself rather than a MAC, so the body is not
// bound to it; TLS is what keeps the token from being read on the way.
// Both sides are hashed first so that the comparison does not leak the
// secret's length either.
func VerifyGitLab(h http.Header, _ []byte, secret []byte) error {
	tok := h.Get("X-Gitlab-Token")
	if tok == "" {
		return ErrMissingSignature
	}
	got := sha256.Sum256([]byte(tok))
	want := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrBadSignature
	}
	return nil
}

// gitlabPayload holds the fields driftless reads from GitLab push, tag push
// and merge request payloads (and system hooks carrying them).
type gitlabPayload struct {
	ObjectKind string `json:"object_kind"`
	EventName  string `json:"event_name"`
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Project    struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
		GitSSHURL         string `json:"git_ssh_url"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
	} `json:"repository"`
	Attrs *struct {
		IID          int    `json:"iid"`
		Action       string `json:"action"`
		State        string `json:"state"`
		TargetBranch string `json:"target_branch"`
		SourceProjID int    `json:"source_project_id"`
		TargetProjID int    `json:"target_project_id"`
		OldRev       string `json:"oldrev"`
		AuthorID     int64  `json:"author_id"`
		LastCommit   struct {
			ID string `json:"id"`
		} `json:"last_commit"`
		// Note and NoteableType describe a Note Hook's comment.
		Note         string `json:"note"`
		NoteableType string `json:"noteable_type"`
	} `json:"object_attributes"`
	// User comes with merge request and Note hooks, MergeRequest with a
	// Note Hook.
	User struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	} `json:"user"`
	MergeRequest *struct {
		IID        int `json:"iid"`
		LastCommit struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"merge_request"`
}

// ParseGitLab turns a GitLab delivery into an event. The kind comes from
// X-Gitlab-Event; a System Hook says its kind in the body instead.
func ParseGitLab(h http.Header, body []byte) (sources.Event, error) {
	name := h.Get("X-Gitlab-Event")
	ev := sources.Event{Provider: "gitlab", Kind: name, DeliveryID: firstHeader(h, "X-Gitlab-Event-Uuid", "Idempotency-Key")}
	if name == "" {
		return ev, fmt.Errorf("%w: no X-Gitlab-Event header", ErrBadPayload)
	}
	var p gitlabPayload
	if err := decode(body, &p); err != nil {
		return ev, fmt.Errorf("parse gitlab %s: %w", name, err)
	}
	ev.Repository = p.Project.PathWithNamespace
	ev.CloneURLs = urls(p.Project.GitHTTPURL, p.Project.GitSSHURL, p.Repository.GitHTTPURL, p.Repository.GitSSHURL)
	kind := map[string]string{"Push Hook": "push", "Tag Push Hook": "tag_push", "Merge Request Hook": "merge_request", "Note Hook": "note"}[name]
	if name == "System Hook" {
		kind = p.ObjectKind
		if kind == "" {
			kind = p.EventName
		}
	}
	switch kind {
	case "push", "tag_push":
		if p.Ref == "" {
			return ev, fmt.Errorf("parse gitlab %s: %w: no ref", name, ErrBadPayload)
		}
		ev = pushEvent(ev, p.Ref, p.After, false)
	case "merge_request":
		if p.Attrs == nil {
			return ev, fmt.Errorf("parse gitlab %s: %w: no object_attributes", name, ErrBadPayload)
		}
		ev.Kind = KindPullRequest
		ev.PullRequest = p.Attrs.IID
		ev.Commit = p.Attrs.LastCommit.ID
		ev.BaseRef = p.Attrs.TargetBranch
		ev.Action, ev.Merged = gitlabAction(p.Attrs.Action, p.Attrs.OldRev)
		ev.Fork = p.Attrs.SourceProjID == 0 || p.Attrs.SourceProjID != p.Attrs.TargetProjID
		// The hook's user is whoever caused the event (a reopen, a push
		// to the branch), not the author: it names the author only when
		// their ids agree. Otherwise the author is unknown, so trusted
		// by nobody's list.
		if p.User.ID != 0 && p.User.ID == p.Attrs.AuthorID {
			ev.Author = p.User.Username
		}
	case "note":
		if p.Attrs == nil || p.Attrs.NoteableType != "MergeRequest" || p.MergeRequest == nil {
			break // a comment on a commit, an issue or a snippet
		}
		// A Note Hook is sent for new comments only. The merge request's
		// last commit it names is kept for logs; the approval reads the
		// head from the Git server (sources.Git.PullHead).
		ev.Kind, ev.Action = KindComment, "created"
		ev.PullRequest = p.MergeRequest.IID
		ev.Commit = p.MergeRequest.LastCommit.ID
		ev.Login = p.User.Username
		ev.Comment = p.Attrs.Note
	}
	return finish(ev)
}

// gitlabAction normalises a merge request action. An "update" is a
// synchronize only when GitLab reports the previous head (oldrev), that is
// when new commits were pushed; a title or label change stays "update".
func gitlabAction(action, oldrev string) (string, bool) {
	switch action {
	case "open":
		return ActionOpened, false
	case "reopen":
		return ActionReopened, false
	case "close":
		return ActionClosed, false
	case "merge":
		return ActionClosed, true
	case "update":
		if oldrev != "" {
			return ActionSynchronize, false
		}
	}
	return action, false
}

// gitlabPullRef is the ref under which GitLab publishes merge request n's
// head (n is the merge request's iid, its number within the project).
func gitlabPullRef(n int) string { return fmt.Sprintf("refs/merge-requests/%d/head", n) }
