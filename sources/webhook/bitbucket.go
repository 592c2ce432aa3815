package webhook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/driftless/driftless/sources"
)

// VerifyBitbucket checks X-Hub-Signature: "sha256=<hex>", which Bitbucket
// Cloud and Data Center both send (SHA-256 under the header name GitHub
// uses for SHA-1). Any other prefix is refused.
func VerifyBitbucket(h http.Header, body, secret []byte) error {
	sig := strings.TrimSpace(h.Get("X-Hub-Signature"))
	if sig == "" {
		return ErrMissingSignature
	}
	if !strings.HasPrefix(sig, "sha256=") {
		return ErrBadSignature
	}
	return checkHexHMAC(sig, body, secret)
}

// bbRef is a Bitbucket Cloud branch or tag in a push change.
type bbRef struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Target struct {
		Hash string `json:"hash"`
	} `json:"target"`
}

// bbRepo is a repository of either flavour: Cloud names it by full_name
// and links to its page, Data Center by project key and slug with clone
// links.
type bbRepo struct {
	FullName string `json:"full_name"`
	Slug     string `json:"slug"`
	Project  struct {
		Key string `json:"key"`
	} `json:"project"`
	Links struct {
		HTML struct {
			Href string `json:"href"`
		} `json:"html"`
		Clone []struct {
			Href string `json:"href"`
		} `json:"clone"`
	} `json:"links"`
}

// name returns the repository's full name and clone URLs. A Data Center
// repository is named "PROJECT/slug", as its clone URLs do.
func (r bbRepo) name() (string, []string) {
	if r.FullName != "" || r.Slug == "" {
		return r.FullName, urls(r.Links.HTML.Href)
	}
	var clone []string
	for _, c := range r.Links.Clone {
		clone = append(clone, c.Href)
	}
	return r.Project.Key + "/" + r.Slug, urls(clone...)
}

// bbServerRef is one end of a Bitbucket Data Center pull request.
type bbServerRef struct {
	ID           string `json:"id"`
	DisplayID    string `json:"displayId"`
	LatestCommit string `json:"latestCommit"`
	Repository   bbRepo `json:"repository"`
}

// bitbucketPayload holds the fields driftless reads from Cloud and Data
// Center payloads; the two share one endpoint and differ in their event keys.
type bitbucketPayload struct {
	Repository bbRepo `json:"repository"`
	Push       struct {
		Changes []struct {
			New *bbRef `json:"new"`
			Old *bbRef `json:"old"`
		} `json:"changes"`
	} `json:"push"`
	PullRequest *struct {
		ID     int `json:"id"`
		Source struct {
			Commit struct {
				Hash string `json:"hash"`
			} `json:"commit"`
			Branch struct {
				Name string `json:"name"`
			} `json:"branch"`
			Repository struct {
				FullName string `json:"full_name"`
			} `json:"repository"`
		} `json:"source"`
		Destination struct {
			Branch struct {
				Name string `json:"name"`
			} `json:"branch"`
		} `json:"destination"`
		Author struct {
			Nickname string `json:"nickname"`
			Username string `json:"username"`
		} `json:"author"`
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	} `json:"pullrequest"`
	ServerPR *struct {
		ID      int         `json:"id"`
		FromRef bbServerRef `json:"fromRef"`
		ToRef   bbServerRef `json:"toRef"`
		Author  struct {
			User struct {
				Name string `json:"name"`
			} `json:"user"`
		} `json:"author"`
	} `json:"pullRequest"`
	Changes []struct {
		RefID  string `json:"refId"`
		ToHash string `json:"toHash"`
		Type   string `json:"type"`
	} `json:"changes"`
}

// bitbucketPRAction maps the pull request event keys of Cloud
// (pullrequest:*) and Data Center (pr:*) to an action and a merged flag;
// other keys keep their own action word.
func bitbucketPRAction(key string) (string, bool) {
	switch key {
	case "pullrequest:created", "pr:opened":
		return ActionOpened, false
	case "pullrequest:updated", "pr:from_ref_updated":
		return ActionSynchronize, false
	case "pullrequest:fulfilled", "pr:merged":
		return ActionClosed, true
	case "pullrequest:rejected", "pr:declined", "pr:deleted":
		return ActionClosed, false
	}
	_, after, _ := strings.Cut(key, ":")
	return after, false
}

// ParseBitbucket turns a Bitbucket Cloud or Data Center delivery into one
// event: the first of ParseBitbucketAll's.
func ParseBitbucket(h http.Header, body []byte) (sources.Event, error) {
	evs, err := ParseBitbucketAll(h, body)
	return evs[0], err
}

// ParseBitbucketAll turns a Bitbucket Cloud or Data Center delivery into
// its events. A push that changed several refs at once (a branch and a tag,
// or `git push --all`) is one delivery listing every change, and each
// change becomes its own event: the followed branch may be any of them, and
// the Git source only fetches for an event naming its own ref. It always
// returns at least one event, so that a refused delivery can still be
// labelled and logged.
func ParseBitbucketAll(h http.Header, body []byte) ([]sources.Event, error) {
	name := h.Get("X-Event-Key")
	ev := sources.Event{Provider: "bitbucket", Kind: name, DeliveryID: firstHeader(h, "X-Request-Uuid", "X-Request-Id")}
	one := func(ev sources.Event, err error) ([]sources.Event, error) { return []sources.Event{ev}, err }
	if name == "" {
		return one(ev, fmt.Errorf("%w: no X-Event-Key header", ErrBadPayload))
	}
	var p bitbucketPayload
	if err := decode(body, &p); err != nil {
		return one(ev, fmt.Errorf("parse bitbucket %s: %w", name, err))
	}
	ev.Repository, ev.CloneURLs = p.Repository.name()
	var evs []sources.Event
	switch {
	case name == "diagnostics:ping":
		ev.Kind = KindPing
	case name == "repo:push":
		if len(p.Push.Changes) == 0 {
			return one(ev, fmt.Errorf("parse bitbucket %s: %w: no changes", name, ErrBadPayload))
		}
		for _, c := range p.Push.Changes {
			ref := c.New
			if ref == nil {
				ref = c.Old
			}
			if ref == nil {
				return one(ev, fmt.Errorf("parse bitbucket %s: %w: change has neither new nor old ref", name, ErrBadPayload))
			}
			full := "refs/heads/" + ref.Name
			if ref.Type == "tag" {
				full = "refs/tags/" + ref.Name
			}
			evs = append(evs, pushEvent(ev, full, ref.Target.Hash, c.New == nil))
		}
	case name == "repo:refs_changed":
		if len(p.Changes) == 0 {
			return one(ev, fmt.Errorf("parse bitbucket %s: %w: no changes", name, ErrBadPayload))
		}
		for _, c := range p.Changes {
			evs = append(evs, pushEvent(ev, c.RefID, c.ToHash, c.Type == "DELETE"))
		}
	case strings.HasPrefix(name, "pullrequest:") && p.PullRequest != nil:
		ev.Kind = KindPullRequest
		ev.Action, ev.Merged = bitbucketPRAction(name)
		ev.PullRequest = p.PullRequest.ID
		ev.Commit = p.PullRequest.Source.Commit.Hash
		ev.BaseRef = p.PullRequest.Destination.Branch.Name
		// The head commit is abbreviated, and Bitbucket Cloud publishes no
		// pull request ref: the source branch is what can be fetched, when
		// it is in this repository and not a fork.
		src := p.PullRequest.Source
		if src.Branch.Name != "" && (src.Repository.FullName == "" || src.Repository.FullName == ev.Repository) {
			ev.HeadRef = "refs/heads/" + src.Branch.Name
		}
		ev.Fork = isFork(src.Repository.FullName, ev.Repository)
		ev.Author = p.PullRequest.Author.Nickname
		if ev.Author == "" {
			ev.Author = p.PullRequest.Author.Username
		}
	case strings.HasPrefix(name, "pr:") && p.ServerPR != nil:
		ev.Kind = KindPullRequest
		ev.Action, ev.Merged = bitbucketPRAction(name)
		ev.PullRequest = p.ServerPR.ID
		ev.Commit = p.ServerPR.FromRef.LatestCommit
		ev.BaseRef = p.ServerPR.ToRef.DisplayID
		ev.Repository, ev.CloneURLs = p.ServerPR.ToRef.Repository.name()
		from, _ := p.ServerPR.FromRef.Repository.name()
		if strings.HasPrefix(p.ServerPR.FromRef.ID, "refs/") && from == ev.Repository {
			ev.HeadRef = p.ServerPR.FromRef.ID
		}
		ev.Fork = isFork(from, ev.Repository)
		ev.Author = p.ServerPR.Author.User.Name
	}
	if evs == nil {
		return one(finish(ev))
	}
	for i := range evs {
		var err error
		if evs[i], err = finish(evs[i]); err != nil {
			return []sources.Event{evs[i]}, err
		}
	}
	return evs, nil
}
