package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestCommentEvents parses pull request comments as GitHub and Gitea send
// them (issue_comment) and GitLab (Note Hook on a merge request), with the
// payload fields their documentation gives; comments on issues, commits
// and snippets stay unacted-on events.
func TestCommentEvents(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	repo := `"repository":{"full_name":"team/infra","clone_url":"https://git.example/team/infra.git"}`
	tests := []struct {
		name   string
		parse  ParseFunc
		header map[string]string
		body   string
		want   string // kind, action, pull request, login, commit, comment
	}{
		{"github pull request comment", ParseGitHub, map[string]string{"X-GitHub-Event": "issue_comment"},
			`{"action":"created","issue":{"number":7,"pull_request":{"url":"https://api.example/pulls/7"}},"comment":{"body":"/driftless approve prod","user":{"login":"alice"}},` + repo + `}`,
			"comment|created|7|alice||/driftless approve prod"},
		{"github issue comment", ParseGitHub, map[string]string{"X-GitHub-Event": "issue_comment"},
			`{"action":"created","issue":{"number":8},"comment":{"body":"/driftless approve prod","user":{"login":"alice"}},` + repo + `}`,
			"issue_comment||0|||"},
		{"gitea pull request comment", ParseGitea, map[string]string{"X-Gitea-Event": "issue_comment"},
			`{"action":"created","issue":{"number":3,"pull_request":{"merged":false}},"comment":{"body":"lgtm\n/driftless approve prod","user":{"login":"bob","username":"bob"}},"is_pull":true,` + repo + `}`,
			"comment|created|3|bob||lgtm\n/driftless approve prod"},
		{"gitea issue comment", ParseGitea, map[string]string{"X-Gitea-Event": "issue_comment"},
			`{"action":"created","issue":{"number":4},"comment":{"body":"x","user":{"login":"bob"}},"is_pull":false,` + repo + `}`,
			"issue_comment||0|||"},
		{"gitlab merge request note", ParseGitLab, map[string]string{"X-Gitlab-Event": "Note Hook"},
			`{"object_kind":"note","user":{"username":"carol"},"project":{"path_with_namespace":"team/infra"},"object_attributes":{"note":"/driftless approve prod","noteable_type":"MergeRequest"},"merge_request":{"iid":5,"last_commit":{"id":"` + sha + `"}}}`,
			"comment|created|5|carol|" + sha + "|/driftless approve prod"},
		{"gitlab commit note", ParseGitLab, map[string]string{"X-Gitlab-Event": "Note Hook"},
			`{"object_kind":"note","user":{"username":"carol"},"project":{"path_with_namespace":"team/infra"},"object_attributes":{"note":"/driftless approve prod","noteable_type":"Commit"}}`,
			"Note Hook||0|||"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/json"}}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			ev, err := tc.parse(h, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join([]string{ev.Kind, ev.Action, strconv.Itoa(ev.PullRequest), ev.Login, ev.Commit, ev.Comment}, "|")
			if got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	// A login with a space is not a login.
	_, err := ParseGitHub(http.Header{"X-Github-Event": {"issue_comment"}, "Content-Type": {"application/json"}},
		[]byte(`{"action":"created","issue":{"number":7,"pull_request":{}},"comment":{"body":"x","user":{"login":"a b"}},`+repo+`}`))
	if err == nil {
		t.Error("a login with a space was accepted")
	}
}
