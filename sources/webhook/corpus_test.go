package webhook

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusCase is one payload of testdata/ with the header its sender would
// send and the facts MANIFEST.md records for it.
type corpusCase struct {
	file     string
	endpoint string // the /hooks/{provider} it is sent to
	header   string // "Name: value" of the event header
	provider string
	kind     string
	repo     string
	ref      string
	commit   string // prefix of the expected commit ("" means none)
	deleted  bool
	pr       int
	action   string
	merged   bool
	baseRef  string
}

// corpusCases lists every payload in testdata/ with its expected event.
// Refs, commits and actions are MANIFEST.md's facts; repository names are
// those the payloads carry.
func corpusCases() []corpusCase {
	const gh, gt, gl, bb = "github", "gitea", "gitlab", "bitbucket"
	return []corpusCase{
		{file: "github/create-6.json", endpoint: gh, header: "X-GitHub-Event: create", provider: gh, kind: "create", repo: "baxterthehacker/public-repo"},
		{file: "github/create-7.json", endpoint: gh, header: "X-GitHub-Event: create", provider: gh, kind: "create", repo: "bradrydzewski/drone-test-go"},
		{file: "github/create-8.json", endpoint: gh, header: "X-GitHub-Event: create", provider: gh, kind: "create", repo: "bradrydzewski/drone-test-go"},
		{file: "github/delete-5.json", endpoint: gh, header: "X-GitHub-Event: delete", provider: gh, kind: "delete", repo: "baxterthehacker/public-repo"},
		{file: "github/delete-6.json", endpoint: gh, header: "X-GitHub-Event: delete", provider: gh, kind: "delete", repo: "bradrydzewski/drone-test-go"},
		{file: "github/delete-7.json", endpoint: gh, header: "X-GitHub-Event: delete", provider: gh, kind: "delete", repo: "bradrydzewski/drone-test-go"},
		{file: "github/ping-5.json", endpoint: gh, header: "X-GitHub-Event: ping", provider: gh, kind: "ping"},
		{file: "github/pull_request_closed-3.json", endpoint: gh, header: "X-GitHub-Event: pull_request", provider: gh, kind: "pull_request", repo: "bradrydzewski/drone-test-go", commit: "d2b75aa", pr: 1, action: "closed", baseRef: "bradrydzewski-patch-1"},
		{file: "github/pull_request_opened-5.json", endpoint: gh, header: "X-GitHub-Event: pull_request", provider: gh, kind: "pull_request", repo: "baxterthehacker/public-repo", commit: "0d1a26e", pr: 1, action: "opened", baseRef: "master"},
		{file: "github/pull_request_opened-6.json", endpoint: gh, header: "X-GitHub-Event: pull_request", provider: gh, kind: "pull_request", repo: "bradrydzewski/drone-test-go", commit: "d2b75aa", pr: 1, action: "opened", baseRef: "bradrydzewski-patch-1"},
		{file: "github/pull_request_synchronize-2.json", endpoint: gh, header: "X-GitHub-Event: pull_request", provider: gh, kind: "pull_request", repo: "bradrydzewski/drone-test-go", commit: "8102e37", pr: 1, action: "synchronize", baseRef: "bradrydzewski-patch-1"},
		{file: "github/push-8.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "push", repo: "binkkatal/sample_app", ref: "refs/heads/master", commit: "fd48986"},
		{file: "github/push-9.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "push", repo: "Codertocat/Hello-World", ref: "refs/heads/master", commit: "199eddf"},
		{file: "github/push-10.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "push", repo: "bradrydzewski/drone-test-go", ref: "refs/heads/feature-branch", commit: "d2b75aa"},
		{file: "github/push-11.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "push", repo: "bradrydzewski/drone-test-go", ref: "refs/heads/feature-branch", deleted: true},
		{file: "github/push-12.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "tag_push", repo: "bradrydzewski/drone-test-go", ref: "refs/tags/v0.0.1", commit: "d2b75aa"},
		{file: "github/push-13.json", endpoint: gh, header: "X-GitHub-Event: push", provider: gh, kind: "tag_push", repo: "bradrydzewski/drone-test-go", ref: "refs/tags/v0.0.1", deleted: true},

		{file: "gitea/create-1.json", endpoint: gt, header: "X-Gitea-Event: create", provider: gt, kind: "create", repo: "example/example"},
		{file: "gitea/create-2.json", endpoint: gt, header: "X-Gitea-Event: create", provider: gt, kind: "create", repo: "gogits/hello-world"},
		{file: "gitea/create-3.json", endpoint: gt, header: "X-Gitea-Event: create", provider: gt, kind: "create", repo: "gogits/hello-world"},
		{file: "gitea/delete-1.json", endpoint: gt, header: "X-Gitea-Event: delete", provider: gt, kind: "delete", repo: "example/example"},
		{file: "gitea/delete-2.json", endpoint: gt, header: "X-Gitea-Event: delete", provider: gt, kind: "delete", repo: "gogits/hello-world"},
		{file: "gitea/delete-3.json", endpoint: gt, header: "X-Gitea-Event: delete", provider: gt, kind: "delete", repo: "gogits/hello-world"},
		{file: "gitea/pull_request_closed-1.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "closed", baseRef: "master"},
		{file: "gitea/pull_request_edited-1.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "edited", baseRef: "master"},
		{file: "gitea/pull_request_merged-1.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "closed", merged: true, baseRef: "master"},
		{file: "gitea/pull_request_opened-1.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "opened", baseRef: "master"},
		{file: "gitea/pull_request_opened-2.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "example/example", commit: "48e773f", pr: 2, action: "opened", baseRef: "master"},
		{file: "gitea/pull_request_synchronized-1.json", endpoint: gt, header: "X-Gitea-Event: pull_request", provider: gt, kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "synchronize", baseRef: "master"},
		{file: "gitea/push-1.json", endpoint: gt, header: "X-Gitea-Event: push", provider: gt, kind: "push", repo: "example/example", ref: "refs/heads/master", commit: "67b5658"},
		{file: "gitea/push-2.json", endpoint: gt, header: "X-Gitea-Event: push", provider: gt, kind: "push", repo: "gogits/hello-world", ref: "refs/heads/master", commit: "4522cbc"},
		{file: "gitea/push-3.json", endpoint: gt, header: "X-Gitea-Event: push", provider: gt, kind: "push", repo: "gitea/webhooks", ref: "refs/heads/develop", commit: "bffeb74"},
		// The Gitea payloads again, as Forgejo sends them (same JSON, its own headers).
		{file: "gitea/push-2.json", endpoint: "forgejo", header: "X-Forgejo-Event: push", provider: "forgejo", kind: "push", repo: "gogits/hello-world", ref: "refs/heads/master", commit: "4522cbc"},
		{file: "gitea/pull_request_merged-1.json", endpoint: "forgejo", header: "X-Forgejo-Event: pull_request", provider: "forgejo", kind: "pull_request", repo: "jcitizen/my-repo", commit: "2eba238", pr: 1, action: "closed", merged: true, baseRef: "master"},

		{file: "gogs/create-1.json", endpoint: "gogs", header: "X-Gogs-Event: create", provider: "gogs", kind: "create", repo: "gogits/hello-world"},
		{file: "gogs/create-2.json", endpoint: "gogs", header: "X-Gogs-Event: create", provider: "gogs", kind: "create", repo: "gogits/hello-world"},
		{file: "gogs/delete-1.json", endpoint: "gogs", header: "X-Gogs-Event: delete", provider: "gogs", kind: "delete", repo: "gogits/hello-world"},
		{file: "gogs/delete-2.json", endpoint: "gogs", header: "X-Gogs-Event: delete", provider: "gogs", kind: "delete", repo: "gogits/hello-world"},
		{file: "gogs/pull_request_closed-1.json", endpoint: "gogs", header: "X-Gogs-Event: pull_request", provider: "gogs", kind: "pull_request", repo: "gogits/hello-world", pr: 2, action: "closed", baseRef: "master"},
		{file: "gogs/pull_request_edited-1.json", endpoint: "gogs", header: "X-Gogs-Event: pull_request", provider: "gogs", kind: "pull_request", repo: "gogits/hello-world", pr: 2, action: "edited", baseRef: "master"},
		{file: "gogs/pull_request_opened-1.json", endpoint: "gogs", header: "X-Gogs-Event: pull_request", provider: "gogs", kind: "pull_request", repo: "gogits/hello-world", pr: 2, action: "opened", baseRef: "master"},
		{file: "gogs/pull_request_synchronized-1.json", endpoint: "gogs", header: "X-Gogs-Event: pull_request", provider: "gogs", kind: "pull_request", repo: "gogits/hello-world", pr: 2, action: "synchronize", baseRef: "master"},
		{file: "gogs/push-1.json", endpoint: "gogs", header: "X-Gogs-Event: push", provider: "gogs", kind: "push", repo: "gogits/hello-world", ref: "refs/heads/master", commit: "4522cbc"},

		{file: "gitlab/merge_request-1.json", endpoint: gl, header: "X-Gitlab-Event: Merge Request Hook", provider: gl, kind: "pull_request", repo: "gitlabhq/gitlab-test", commit: "da15608", pr: 1, action: "opened", baseRef: "master"},
		{file: "gitlab/merge_request-2.json", endpoint: gl, header: "X-Gitlab-Event: Merge Request Hook", provider: gl, kind: "pull_request", repo: "gitlab-org/hello-world", commit: "c4c7922", pr: 1, action: "opened", baseRef: "master"},
		{file: "gitlab/merge_request-3.json", endpoint: gl, header: "X-Gitlab-Event: Merge Request Hook", provider: gl, kind: "pull_request", repo: "gitlab-org/hello-world", commit: "c4c7922", pr: 1, action: "closed", merged: true, baseRef: "master"},
		{file: "gitlab/merge_request-4.json", endpoint: gl, header: "X-Gitlab-Event: Merge Request Hook", provider: gl, kind: "pull_request", repo: "gitlab-org/hello-world", commit: "c4c7922", pr: 1, action: "closed", baseRef: "master"},
		{file: "gitlab/push-1.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "mike/diaspora", ref: "refs/heads/master", commit: "da15608"},
		{file: "gitlab/push-2.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "gitlab-org/hello-world", ref: "refs/heads/master", commit: "2adc946"},
		{file: "gitlab/push-3.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "gitlab-org/hello-world", ref: "refs/heads/master", commit: "78a76ee"},
		{file: "gitlab/push-4.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "group1/group2/group3/grp2repo", ref: "refs/heads/master", commit: "2adc946"},
		{file: "gitlab/push-5.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "gitlab-org/hello-world", ref: "refs/heads/feature", commit: "c4c7922"},
		{file: "gitlab/push-6.json", endpoint: gl, header: "X-Gitlab-Event: Push Hook", provider: gl, kind: "push", repo: "gitlab-org/hello-world", ref: "refs/heads/feature", deleted: true},
		{file: "gitlab/system_push-1.json", endpoint: gl, header: "X-Gitlab-Event: System Hook", provider: gl, kind: "push", repo: "mike/diaspora", ref: "refs/heads/master", commit: "da15608"},
		{file: "gitlab/tag_push-1.json", endpoint: gl, header: "X-Gitlab-Event: Tag Push Hook", provider: gl, kind: "tag_push", repo: "jsmith/example", ref: "refs/tags/v1.0.0", commit: "82b3d5a"},
		{file: "gitlab/tag_push-2.json", endpoint: gl, header: "X-Gitlab-Event: Tag Push Hook", provider: gl, kind: "tag_push", repo: "gitlab-org/hello-world", ref: "refs/tags/v1.0.0", commit: "2adc946"},
		{file: "gitlab/tag_push-3.json", endpoint: gl, header: "X-Gitlab-Event: Tag Push Hook", provider: gl, kind: "tag_push", repo: "gitlab-org/hello-world", ref: "refs/tags/v1.0.0", deleted: true},

		{file: "bitbucket-cloud/pullrequest_created-1.json", endpoint: bb, header: "X-Event-Key: pullrequest:created", provider: bb, kind: "pull_request", repo: "brydzewski/foo", commit: "507a576e59b3", pr: 1, action: "opened", baseRef: "master"},
		{file: "bitbucket-cloud/pullrequest_fulfilled-1.json", endpoint: bb, header: "X-Event-Key: pullrequest:fulfilled", provider: bb, kind: "pull_request", repo: "brydzewski/foo", commit: "0704fc5beccc", pr: 1, action: "closed", merged: true, baseRef: "master"},
		{file: "bitbucket-cloud/repo_push-1.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "push", repo: "team_name/repo_name", ref: "refs/heads/name-of-branch", commit: "709d658"},
		{file: "bitbucket-cloud/repo_push-2.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "push", repo: "brydzewski/foo", ref: "refs/heads/master", commit: "141977f"},
		{file: "bitbucket-cloud/repo_push-3.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "push", repo: "brydzewski/foo", ref: "refs/heads/develop", commit: "141977f"},
		{file: "bitbucket-cloud/repo_push-4.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "push", repo: "brydzewski/foo", ref: "refs/heads/develop", deleted: true},
		{file: "bitbucket-cloud/repo_push-5.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "tag_push", repo: "brydzewski/foo", ref: "refs/tags/feature/x", commit: "141977f"},
		{file: "bitbucket-cloud/repo_push-6.json", endpoint: bb, header: "X-Event-Key: repo:push", provider: bb, kind: "tag_push", repo: "brydzewski/foo", ref: "refs/tags/feature/x", deleted: true},
		{file: "bitbucket-server/pr_merged-1.json", endpoint: bb, header: "X-Event-Key: pr:merged", provider: bb, kind: "pull_request", repo: "~gopher/webhook-test", commit: "32a0b8a", pr: 5, action: "closed", merged: true, baseRef: "master"},
		{file: "bitbucket-server/repo_refs_changed-1.json", endpoint: bb, header: "X-Event-Key: repo:refs_changed", provider: bb, kind: "push", repo: "~gopher/webhook-test", ref: "refs/heads/feature/wip", deleted: true},
	}
}

// readCorpus reads one payload of testdata/ byte-exact.
func readCorpus(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(file)))
	if err != nil {
		t.Fatalf("read corpus file: %v", err)
	}
	return b
}

// eventHeader turns "Name: value" into a header.
func eventHeader(line string) http.Header {
	name, value, _ := strings.Cut(line, ": ")
	h := http.Header{}
	h.Set(name, value)
	h.Set("Content-Type", "application/json")
	return h
}

func TestCorpusParses(t *testing.T) {
	table := providers("")
	seen := map[string]bool{}
	for _, c := range corpusCases() {
		seen[c.file] = true
		t.Run(c.endpoint+"/"+c.file, func(t *testing.T) {
			ev, err := table[c.endpoint].parse(eventHeader(c.header), readCorpus(t, c.file))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if ev.Provider != c.provider || ev.Kind != c.kind || ev.Repository != c.repo || ev.Ref != c.ref {
				t.Errorf("got provider=%q kind=%q repo=%q ref=%q, want %q %q %q %q",
					ev.Provider, ev.Kind, ev.Repository, ev.Ref, c.provider, c.kind, c.repo, c.ref)
			}
			if (c.commit == "") != (ev.Commit == "") || !strings.HasPrefix(ev.Commit, c.commit) {
				t.Errorf("commit = %q, want prefix %q", ev.Commit, c.commit)
			}
			if ev.Deleted != c.deleted || ev.PullRequest != c.pr || ev.Action != c.action || ev.Merged != c.merged || ev.BaseRef != c.baseRef {
				t.Errorf("got deleted=%v pr=%d action=%q merged=%v base=%q, want %v %d %q %v %q",
					ev.Deleted, ev.PullRequest, ev.Action, ev.Merged, ev.BaseRef, c.deleted, c.pr, c.action, c.merged, c.baseRef)
			}
			if c.repo != "" && c.provider != "bitbucket" && len(ev.CloneURLs) == 0 {
				t.Errorf("no clone URLs for %s", c.repo)
			}
		})
	}
	// Every payload of the corpus must be in the table, so that a file
	// added to testdata cannot go untested.
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel := filepath.ToSlash(strings.TrimPrefix(f, "testdata"+string(filepath.Separator)))
		if !seen[rel] {
			t.Errorf("corpus file %s has no expected values", rel)
		}
	}
	if len(files) != 65 {
		t.Errorf("corpus has %d payload files, MANIFEST.md lists 65", len(files))
	}
}

// TestCorpusPullRequestOrigin: every provider says whether a pull request
// comes from a fork and who opened it, which previews.forks and
// previews.authors decide on.
func TestCorpusPullRequestOrigin(t *testing.T) {
	table := providers("")
	for _, c := range []struct {
		endpoint, header, file string
		fork                   bool
		author                 string
	}{
		{"github", "X-GitHub-Event: pull_request", "github/pull_request_opened-5.json", false, "baxterthehacker"},
		{"gitea", "X-Gitea-Event: pull_request", "gitea/pull_request_opened-1.json", false, "jcitizen"},
		{"gitea", "X-Gitea-Event: pull_request", "gitea/pull_request_opened-2.json", true, "example2"},
		// GitLab's sample: user 1 (root) sends author 51's merge request.
		{"gitlab", "X-Gitlab-Event: Merge Request Hook", "gitlab/merge_request-1.json", false, ""},
		{"bitbucket", "X-Event-Key: pullrequest:created", "bitbucket-cloud/pullrequest_created-1.json", false, "brydzewski"},
		{"bitbucket", "X-Event-Key: pr:merged", "bitbucket-server/pr_merged-1.json", false, "gopher"},
	} {
		t.Run(c.file, func(t *testing.T) {
			ev, err := table[c.endpoint].parse(eventHeader(c.header), readCorpus(t, c.file))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if ev.Fork != c.fork || ev.Author != c.author {
				t.Errorf("fork=%v author=%q, want %v %q", ev.Fork, ev.Author, c.fork, c.author)
			}
		})
	}
}
