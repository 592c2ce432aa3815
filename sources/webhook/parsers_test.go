package webhook

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestGitHubFormEncoded sends a push as GitHub does when the hook's content
// type is form-encoded: the JSON is in the payload field, and the MAC is
// over the raw form body.
func TestGitHubFormEncoded(t *testing.T) {
	r := newRig(t, nil)
	form := []byte("payload=" + url.QueryEscape(string(readCorpus(t, "github/push-8.json"))))
	h := signed("github", "X-GitHub-Event: push", form)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := r.do(t, "github", h, form); got != http.StatusAccepted {
		t.Fatalf("status = %d", got)
	}
	evs := r.target.events()
	if len(evs) != 1 || evs[0].Repository != "binkkatal/sample_app" || !strings.HasPrefix(evs[0].Commit, "fd48986") {
		t.Fatalf("target got %+v", evs)
	}
}

// TestParserEdgeCases covers events and shapes the corpus lacks.
func TestParserEdgeCases(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		parse   ParseFunc
		header  map[string]string
		body    string
		want    string // "kind provider action merged" or "" for an error
		wantErr error
	}{
		{name: "forgejo headers win over gitea's", parse: ParseGitea,
			header: map[string]string{"X-Forgejo-Event": "push", "X-Gitea-Event": "push", "X-Gogs-Event": "push"},
			body:   `{"ref":"refs/heads/main","after":"` + sha + `","repository":{"full_name":"o/r"}}`, want: "push forgejo  false"},
		{name: "gitea also sends gogs headers", parse: ParseGitea,
			header: map[string]string{"X-Gitea-Event": "push", "X-Gogs-Event": "push"},
			body:   `{"ref":"refs/tags/v2","after":"` + sha + `","repository":{"full_name":"o/r"}}`, want: "tag_push gitea  false"},
		{name: "gitea without event header", parse: ParseGitea, body: `{}`, wantErr: ErrBadPayload},
		{name: "gitlab update with new commits", parse: ParseGitLab, header: map[string]string{"X-Gitlab-Event": "Merge Request Hook"},
			body: `{"object_kind":"merge_request","project":{"path_with_namespace":"g/p"},"object_attributes":{"iid":3,"action":"update","oldrev":"` + sha + `","last_commit":{"id":"` + sha + `"}}}`,
			want: "pull_request gitlab synchronize false"},
		{name: "gitlab update of the title only", parse: ParseGitLab, header: map[string]string{"X-Gitlab-Event": "Merge Request Hook"},
			body: `{"object_kind":"merge_request","project":{"path_with_namespace":"g/p"},"object_attributes":{"iid":3,"action":"update"}}`,
			want: "pull_request gitlab update false"},
		{name: "gitlab reopen", parse: ParseGitLab, header: map[string]string{"X-Gitlab-Event": "Merge Request Hook"},
			body: `{"object_kind":"merge_request","project":{"path_with_namespace":"g/p"},"object_attributes":{"iid":3,"action":"reopen"}}`,
			want: "pull_request gitlab reopened false"},
		{name: "gitlab other hook acknowledged", parse: ParseGitLab, header: map[string]string{"X-Gitlab-Event": "Note Hook"},
			body: `{"object_kind":"note","project":{"path_with_namespace":"g/p"}}`, want: "Note Hook gitlab  false"},
		{name: "gitlab push without ref", parse: ParseGitLab, header: map[string]string{"X-Gitlab-Event": "Push Hook"},
			body: `{"object_kind":"push"}`, wantErr: ErrBadPayload},
		{name: "bitbucket cloud pr updated", parse: ParseBitbucket, header: map[string]string{"X-Event-Key": "pullrequest:updated"},
			body: `{"pullrequest":{"id":7,"source":{"commit":{"hash":"abcdef012345"}},"destination":{"branch":{"name":"main"}}},"repository":{"full_name":"o/r"}}`,
			want: "pull_request bitbucket synchronize false"},
		{name: "bitbucket cloud pr declined", parse: ParseBitbucket, header: map[string]string{"X-Event-Key": "pullrequest:rejected"},
			body: `{"pullrequest":{"id":7},"repository":{"full_name":"o/r"}}`, want: "pull_request bitbucket closed false"},
		{name: "bitbucket data center source updated", parse: ParseBitbucket, header: map[string]string{"X-Event-Key": "pr:from_ref_updated"},
			body: `{"pullRequest":{"id":9,"fromRef":{"latestCommit":"` + sha + `"},"toRef":{"displayId":"main","repository":{"slug":"r","project":{"key":"P"}}}}}`,
			want: "pull_request bitbucket synchronize false"},
		{name: "bitbucket data center ping", parse: ParseBitbucket, header: map[string]string{"X-Event-Key": "diagnostics:ping"},
			body: `{"test":true}`, want: "ping bitbucket  false"},
		{name: "bitbucket push without changes", parse: ParseBitbucket, header: map[string]string{"X-Event-Key": "repo:push"},
			body: `{"push":{"changes":[]},"repository":{"full_name":"o/r"}}`, wantErr: ErrBadPayload},
		{name: "github push with a short ref", parse: ParseGitHub, header: map[string]string{"X-GitHub-Event": "push"},
			body: `{"ref":"main","after":"` + sha + `","repository":{"full_name":"o/r"}}`, wantErr: ErrBadPayload},
		{name: "github push with a non-hex commit", parse: ParseGitHub, header: map[string]string{"X-GitHub-Event": "push"},
			body: `{"ref":"refs/heads/main","after":"--upload-pack=x","repository":{"full_name":"o/r"}}`, wantErr: ErrBadPayload},
		{name: "github ref with a newline", parse: ParseGitHub, header: map[string]string{"X-GitHub-Event": "push"},
			body: `{"ref":"refs/heads/a\nb","after":"` + sha + `","repository":{"full_name":"o/r"}}`, wantErr: ErrBadPayload},
		{name: "github without event header", parse: ParseGitHub, body: `{}`, wantErr: ErrBadPayload},
		{name: "generic without repository", parse: ParseGeneric, body: `{"ref":"main"}`, wantErr: ErrBadPayload},
		{name: "generic without ref", parse: ParseGeneric, body: `{"repository":"o/r"}`, wantErr: ErrBadPayload},
		{name: "generic tag", parse: ParseGeneric, body: `{"repository":"o/r","ref":"refs/tags/v1","commit":"` + sha + `"}`, want: "tag_push generic  false"},
		{name: "generic not JSON", parse: ParseGeneric, body: `repository=o/r`, wantErr: ErrBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			ev, err := tt.parse(h, []byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := strings.Join([]string{ev.Kind, ev.Provider, ev.Action, map[bool]string{true: "true", false: "false"}[ev.Merged]}, " ")
			if got != tt.want {
				t.Fatalf("got %q, want %q (%+v)", got, tt.want, ev)
			}
		})
	}
}

func TestMemoryDeliveriesForgets(t *testing.T) {
	var m MemoryDeliveries
	now := time.Unix(1700000000, 0)
	for i := range 1000 {
		if seen, _ := m.MarkDelivery("github", []string{string(rune('a'+i%26)) + strings.Repeat("x", i)}, now, 1); seen {
			t.Fatalf("delivery %d seen before", i)
		}
		now = now.Add(2)
	}
	// Every id expired long ago, so the sweeps keep the map small.
	if m.Len() > 200 {
		t.Fatalf("memory store holds %d expired ids", m.Len())
	}
}

// TestGitLabAuthorIsTheAuthor: a merge request hook names the user who
// caused the event. It is the author only when its id is the merge
// request's author_id; a reopen (or a push) by a trusted user does not make
// someone else's merge request theirs (previews.trusted_authors).
func TestGitLabAuthorIsTheAuthor(t *testing.T) {
	h := http.Header{}
	h.Set("X-Gitlab-Event", "Merge Request Hook")
	mr := func(action, user, authorID string) string {
		return `{"object_kind":"merge_request","user":{` + user + `"username":"maintainer"},"project":{"path_with_namespace":"g/p"},` +
			`"object_attributes":{"iid":4,"action":"` + action + `",` + authorID + `"target_branch":"main",` +
			`"last_commit":{"id":"0123456789abcdef0123456789abcdef01234567"}}}`
	}
	for _, c := range []struct {
		body, want string
	}{
		{mr("open", `"id":11,`, `"author_id":11,`), "maintainer"},
		{mr("reopen", `"id":12,`, `"author_id":11,`), ""}, // user 12 reopened user 11's
		{mr("update", `"id":12,`, `"author_id":11,"oldrev":"aa",`), ""},
		{mr("open", ``, ``), ""}, // no ids: unknown
	} {
		ev, err := ParseGitLab(h, []byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Author != c.want {
			t.Errorf("author %q, want %q (%s)", ev.Author, c.want, c.body)
		}
	}
}
