// Package sources brings revisions to driftless: Git repositories (polled,
// or fetched on a webhook) and local folders (watched). The reconciler does
// not care which caused a revision.
package sources

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/internal/redact"
)

// Revision is one immutable checkout of a source.
type Revision struct {
	// Source is the name of the source that produced it.
	Source string `json:"source"`
	// Commit is the full commit id (for a local folder: a hash of the tree).
	Commit string `json:"commit"`
	// Repo identifies the repository of a Git source (RepoID of its URL);
	// empty for a local folder. Two revisions are the same revision when
	// they have the same commit of the same Repo, whatever their sources.
	Repo string `json:"repo,omitempty"`
	// Ref is the branch or tag followed ("refs/heads/main").
	Ref string `json:"ref,omitempty"`
	// Dir is the folder holding the checkout (the sub-path, when one is
	// configured). It stays unchanged while the revision is in use.
	Dir string `json:"dir,omitempty"`
	// Preview marks a pull request's head: planned and reported, never applied.
	Preview bool `json:"preview,omitempty"`
	// PullRequest is the pull request's number for a preview.
	PullRequest int `json:"pull_request,omitempty"`
	// Author is a preview's pull request author, as the webhook named
	// them; TrustedAuthor says the source lists them in
	// previews.trusted_authors (their preview environments need no approval).
	Author        string `json:"author,omitempty"`
	TrustedAuthor bool   `json:"trusted_author,omitempty"`
	// Closed marks the notice that a preview's pull request was closed or
	// merged: it has no checkout, only Source, Repo and PullRequest.
	Closed bool `json:"closed,omitempty"`
	// Time is when the revision was produced.
	Time time.Time `json:"time"`
	// Tree is the hash of the Git tree the checkout holds (the source's
	// path), "" for other sources. Two commits with the same tree declare
	// the same thing: quarantine keys on it.
	Tree string `json:"tree,omitempty"`
	// Refused, when set, says why the source refused this commit (its
	// signature): the revision has no checkout and is never loaded; it
	// tells the reader that the head is refused and the last good revision
	// stays in use.
	Refused string `json:"refused,omitempty"`
}

// SameRevision reports whether a and b are the same commit of the same
// repository (DESIGN.md, "Promotion").
func SameRevision(a, b Revision) bool {
	return a.Commit != "" && a.Commit == b.Commit && a.Repo == b.Repo
}

// RepoID is the identity of a repository URL: its host (lower case, with
// its port) and path (without a trailing ".git" or "/"), without scheme or
// credentials, so that "https://host/owner/name.git" and the scp-like
// "git@host:owner/name" are the same repository.
func RepoID(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		if at := strings.Index(s, "@"); at >= 0 {
			s = s[at+1:]
		}
		if host, path, ok := strings.Cut(s, ":"); ok {
			s = "ssh://" + host + "/" + strings.TrimPrefix(path, "/")
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return strings.TrimSuffix(strings.TrimSuffix(redact.URL(s), "/"), ".git")
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
	return strings.ToLower(u.Host) + p
}

// Short returns the short form of the commit (kit.Short).
func (r Revision) Short() string { return kit.Short(r.Commit) }

// Source produces revisions. Run sends the current revision whenever it
// changes, returns when ctx ends, and never closes out. An unchanged
// revision is not sent again.
type Source interface {
	Name() string
	Run(ctx context.Context, out chan<- Revision) error
}

// Event is what a webhook said happened, whichever provider sent it.
type Event struct {
	// Provider is github, gitlab, gitea, gogs, forgejo, bitbucket or generic.
	Provider string `json:"provider"`
	// Kind is push, tag_push, pull_request or ping (normalised across providers).
	Kind string `json:"kind"`
	// DeliveryID is the sender's id of this delivery (for replay protection).
	DeliveryID string `json:"delivery_id,omitempty"`
	// Repository is the repository's full name ("owner/name").
	Repository string `json:"repository"`
	// CloneURLs are the repository's URLs as the payload gives them (HTTPS, SSH).
	CloneURLs []string `json:"clone_urls,omitempty"`
	// Ref is the full ref pushed ("refs/heads/main", "refs/tags/v1").
	Ref string `json:"ref,omitempty"`
	// Commit is the commit the ref now points to (a PR's head for pull requests).
	Commit string `json:"commit,omitempty"`
	// Deleted is true when the push deleted the ref.
	Deleted bool `json:"deleted,omitempty"`
	// PullRequest, Action and Merged describe a pull request event;
	// Action is normalised to opened, synchronize, reopened, closed.
	PullRequest int    `json:"pull_request,omitempty"`
	Action      string `json:"action,omitempty"`
	Merged      bool   `json:"merged,omitempty"`
	// BaseRef is the branch a pull request targets.
	BaseRef string `json:"base_ref,omitempty"`
	// Fork is true when a pull request's head lives in another repository
	// than its base (a fork), or when the payload does not say where.
	Fork bool `json:"fork,omitempty"`
	// Author is the login of a pull request's author, as the sender names it.
	Author string `json:"author,omitempty"`
	// PullRef is the ref under which the sender publishes a pull
	// request's head ("refs/pull/7/head", GitLab's
	// "refs/merge-requests/7/head"), set from the webhook provider's row
	// of the table; empty when the sender publishes none (Bitbucket).
	PullRef string `json:"pull_ref,omitempty"`
	// HeadRef is the full ref of a pull request's source branch, set only
	// when it lives in the same repository and the sender publishes no
	// pull request ref to fetch instead (Bitbucket, whose Cloud payloads
	// also abbreviate the head commit).
	HeadRef string `json:"head_ref,omitempty"`
	// Login and Comment describe a pull request comment (kind "comment"):
	// who wrote it on the Git host, and its text (bounded; never logged).
	Login   string `json:"login,omitempty"`
	Comment string `json:"-"`
}
