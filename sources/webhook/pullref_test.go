package webhook

import "testing"

// TestPullRequestRefs: each provider's row gives the events about a pull
// request (opened, and a comment on one) the ref under which that sender
// publishes the pull request's head, which the Git source fetches for a
// preview or an approval; Bitbucket publishes none (its events name the
// source branch instead), and the generic provider has no pull requests.
func TestPullRequestRefs(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	repo := `"repository":{"full_name":"team/infra","clone_url":"https://git.example/team/infra.git"}`
	for _, tc := range []struct {
		name, endpoint, header string
		body                   []byte
		want                   string
	}{
		{"github pull request", "github", "X-GitHub-Event: pull_request", readCorpus(t, "github/pull_request_opened-5.json"), "refs/pull/1/head"},
		{"github comment", "github", "X-GitHub-Event: issue_comment",
			[]byte(`{"action":"created","issue":{"number":7,"pull_request":{"url":"https://api.example/pulls/7"}},"comment":{"body":"/driftless approve prod","user":{"login":"alice"}},` + repo + `}`), "refs/pull/7/head"},
		{"gitlab merge request", "gitlab", "X-Gitlab-Event: Merge Request Hook", readCorpus(t, "gitlab/merge_request-1.json"), "refs/merge-requests/1/head"},
		{"gitlab note", "gitlab", "X-Gitlab-Event: Note Hook",
			[]byte(`{"object_kind":"note","user":{"username":"carol"},"project":{"path_with_namespace":"team/infra"},"object_attributes":{"note":"/driftless approve prod","noteable_type":"MergeRequest"},"merge_request":{"iid":5,"last_commit":{"id":"` + sha + `"}}}`), "refs/merge-requests/5/head"},
		{"gitea pull request", "gitea", "X-Gitea-Event: pull_request", readCorpus(t, "gitea/pull_request_opened-2.json"), "refs/pull/2/head"},
		{"gitea comment", "gitea", "X-Gitea-Event: issue_comment",
			[]byte(`{"action":"created","issue":{"number":3,"pull_request":{"merged":false}},"comment":{"body":"/driftless approve prod","user":{"login":"bob","username":"bob"}},"is_pull":true,` + repo + `}`), "refs/pull/3/head"},
		{"forgejo pull request", "forgejo", "X-Forgejo-Event: pull_request", readCorpus(t, "gitea/pull_request_opened-1.json"), "refs/pull/1/head"},
		{"gogs pull request", "gogs", "X-Gogs-Event: pull_request", readCorpus(t, "gogs/pull_request_opened-1.json"), "refs/pull/2/head"},
		{"bitbucket cloud pull request", "bitbucket", "X-Event-Key: pullrequest:created", readCorpus(t, "bitbucket-cloud/pullrequest_created-1.json"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.do(t, tc.endpoint, signed(tc.endpoint, tc.header, tc.body), tc.body)
			evs := r.target.events()
			if len(evs) != 1 {
				t.Fatalf("target was offered %d events, want 1", len(evs))
			}
			if evs[0].PullRequest <= 0 || evs[0].PullRef != tc.want {
				t.Errorf("pull request %d: ref %q, want %q", evs[0].PullRequest, evs[0].PullRef, tc.want)
			}
		})
	}
	// Every row but Bitbucket's and the generic one's declares its ref.
	for name, p := range providers("") {
		if want := name != "bitbucket" && name != "generic"; (p.pullRef != nil) != want {
			t.Errorf("provider %s: has a pull request ref %v, want %v", name, p.pullRef != nil, want)
		}
	}
}
