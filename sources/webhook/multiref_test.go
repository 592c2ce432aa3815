package webhook

import (
	"net/http"
	"testing"

	"github.com/driftless/driftless/sources"
)

// TestBitbucketPushOfSeveralRefs checks that every change of a Bitbucket
// push reaches the targets, not only the first: a push of a feature branch
// and the followed main branch together must still wake the source that
// follows main. Cloud (repo:push) and Data Center (repo:refs_changed) both
// batch changes this way.
func TestBitbucketPushOfSeveralRefs(t *testing.T) {
	const a, b = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	tests := []struct {
		name, key, body string
		want            []sources.Event
	}{
		{
			name: "cloud", key: "repo:push",
			body: `{"repository":{"full_name":"team/app"},"push":{"changes":[` +
				`{"new":{"type":"branch","name":"feature","target":{"hash":"` + a + `"}}},` +
				`{"new":null,"old":{"type":"branch","name":"gone","target":{"hash":"` + a + `"}}},` +
				`{"new":{"type":"branch","name":"main","target":{"hash":"` + b + `"}}}]}}`,
			want: []sources.Event{
				{Kind: KindPush, Ref: "refs/heads/feature", Commit: a},
				{Kind: KindPush, Ref: "refs/heads/gone", Deleted: true},
				{Kind: KindPush, Ref: "refs/heads/main", Commit: b},
			},
		},
		{
			name: "data center", key: "repo:refs_changed",
			body: `{"repository":{"slug":"app","project":{"key":"TEAM"}},"changes":[` +
				`{"refId":"refs/tags/v1","toHash":"` + a + `","type":"ADD"},` +
				`{"refId":"refs/heads/main","toHash":"` + b + `","type":"UPDATE"}]}`,
			want: []sources.Event{
				{Kind: KindTagPush, Ref: "refs/tags/v1", Commit: a},
				{Kind: KindPush, Ref: "refs/heads/main", Commit: b},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			// This target follows main only, as a Git source would.
			r.target.match = func(ev sources.Event) bool { return ev.Ref == "refs/heads/main" }
			body := []byte(tt.body)
			if got := r.do(t, "bitbucket", signed("bitbucket", "X-Event-Key: "+tt.key, body), body); got != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; log: %s", got, r.log.String())
			}
			if got := r.count("bitbucket", KindPush, ResultAccepted) + r.count("bitbucket", KindTagPush, ResultAccepted); got != 1 {
				t.Errorf("accepted deliveries counted = %v, want 1; log: %s", got, r.log.String())
			}
			evs := r.target.events()
			if len(evs) != len(tt.want) {
				t.Fatalf("target offered %d events, want %d: %+v", len(evs), len(tt.want), evs)
			}
			for i, w := range tt.want {
				e := evs[i]
				if e.Kind != w.Kind || e.Ref != w.Ref || e.Commit != w.Commit || e.Deleted != w.Deleted || e.Repository == "" {
					t.Errorf("event %d = %+v, want kind %s ref %s commit %q deleted %v", i, e, w.Kind, w.Ref, w.Commit, w.Deleted)
				}
			}
		})
	}

	t.Run("a bad change refuses the delivery", func(t *testing.T) {
		r := newRig(t, nil)
		body := []byte(`{"repository":{"full_name":"team/app"},"push":{"changes":[` +
			`{"new":{"type":"branch","name":"main","target":{"hash":"` + b + `"}}},` +
			`{"new":{"type":"branch","name":"x","target":{"hash":"--upload-pack=evil"}}}]}}`)
		if got := r.do(t, "bitbucket", signed("bitbucket", "X-Event-Key: repo:push", body), body); got != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", got)
		}
		if n := len(r.target.events()); n != 0 {
			t.Fatalf("target offered %d events of a refused delivery", n)
		}
	})
}

// TestBitbucketPullRequestHeadRef: Bitbucket publishes no pull request ref
// and Cloud abbreviates the head commit, so the parser names the source
// branch for the Git source to fetch, but only when it is in the same
// repository: a fork's branch is not in the repository the source follows.
func TestBitbucketPullRequestHeadRef(t *testing.T) {
	tests := []struct {
		name, key string
		body      []byte
		want      string
	}{
		{"cloud corpus", "pullrequest:created", readCorpus(t, "bitbucket-cloud/pullrequest_created-1.json"), "refs/heads/develop"},
		{"data center corpus", "pr:merged", readCorpus(t, "bitbucket-server/pr_merged-1.json"), "refs/heads/feature/wip"},
		{"cloud fork", "pullrequest:created", []byte(`{"repository":{"full_name":"team/app"},"pullrequest":{"id":3,` +
			`"source":{"branch":{"name":"fix"},"commit":{"hash":"abcdef012345"},"repository":{"full_name":"someone/app"}},` +
			`"destination":{"branch":{"name":"main"}}}}`), ""},
		{"data center fork", "pr:opened", []byte(`{"pullRequest":{"id":4,` +
			`"fromRef":{"id":"refs/heads/fix","latestCommit":"0123456789abcdef0123456789abcdef01234567","repository":{"slug":"app","project":{"key":"~someone"}}},` +
			`"toRef":{"displayId":"main","repository":{"slug":"app","project":{"key":"TEAM"}}}}}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("X-Event-Key", tt.key)
			ev, err := ParseBitbucket(h, tt.body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if ev.Kind != KindPullRequest || ev.HeadRef != tt.want {
				t.Fatalf("kind %q head ref %q, want pull_request %q", ev.Kind, ev.HeadRef, tt.want)
			}
		})
	}
}
