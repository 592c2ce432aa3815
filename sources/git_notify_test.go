package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

// pushEvent turns a server push into what a GitHub push webhook carries.
func pushEvent(url string, ev gitserver.PushEvent) Event {
	return Event{
		Provider:   "github",
		Kind:       "push",
		Repository: "team/" + ev.Repo,
		CloneURLs:  []string{url},
		Ref:        ev.Ref,
		Commit:     ev.After,
		Deleted:    ev.Deleted(),
	}
}

func TestGitNotifyFetchesBeforeThePollInterval(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "a\n"}, "a")
	work.Push(t)

	// The interval is an hour: only the webhook can bring the next commit.
	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(time.Hour)}, GitCredentials{})
	matched := make(chan bool, 10)
	srv.OnPush(func(ev gitserver.PushEvent) { matched <- g.Notify(pushEvent(url, ev)) })
	out := run(t, g)
	if rev := receive(t, out, 10*time.Second); rev.Commit != a {
		t.Fatalf("first revision %+v, want %s", rev, a)
	}
	b := work.Commit(t, map[string]string{"f": "b\n"}, "b")
	work.Push(t)
	if !<-matched {
		t.Fatal("Notify did not match the push of the followed branch")
	}
	if rev := receive(t, out, 10*time.Second); rev.Commit != b {
		t.Fatalf("webhook revision %+v, want %s", rev, b)
	}

	// A burst of pushes coalesces: the newest commit arrives, no stale one after it.
	var last string
	for i := range 3 {
		last = work.Commit(t, map[string]string{"f": string(rune('c'+i)) + "\n"}, "burst")
		work.Push(t)
	}
	deadline := time.After(10 * time.Second)
	for got := ""; got != last; {
		select {
		case rev := <-out:
			got = rev.Commit
		case <-deadline:
			t.Fatalf("newest commit %s never arrived", last)
		}
	}
	expectNone(t, out, 300*time.Millisecond)

	// Deleting the followed branch keeps the last good revision and marks the source down.
	work.DeleteBranch(t, "main")
	eventually(t, 10*time.Second, "source_up 0 after branch deletion", func() bool {
		return gauge(t, g.reg, "driftless_source_up") == 0
	})
	expectNone(t, out, 300*time.Millisecond)
	if _, err := os.Stat(filepath.Join(g.dir, "checkouts", last)); err != nil {
		t.Errorf("last good checkout removed after branch deletion: %v", err)
	}
	// The branch comes back: the source recovers by itself (backoff retries).
	again := work.Commit(t, map[string]string{"f": "back\n"}, "back")
	work.Push(t)
	if rev := receive(t, out, 10*time.Second); rev.Commit != again {
		t.Fatalf("revision after branch recreated %+v, want %s", rev, again)
	}
	if up := gauge(t, g.reg, "driftless_source_up"); up != 1 {
		t.Errorf("source_up = %v after recovery", up)
	}
}

func TestGitBranchDeletedIsRefNotFound(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	work.Commit(t, map[string]string{"f": "a\n"}, "a")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url, Branch: "release"}, GitCredentials{})
	_, err := g.pass(context.Background(), "")
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("pass on a missing branch = %v, want ErrRefNotFound", err)
	}
}

func TestGitNotifyMatching(t *testing.T) {
	g := newTestGit(t, config.GitSource{URL: "https://bot:tok3n@GitHub.com/Team/App.git", Branch: "main"}, GitCredentials{})
	tests := []struct {
		name string
		ev   Event
		want bool
	}{
		{"https clone url", Event{Kind: "push", CloneURLs: []string{"https://github.com/team/app"}, Ref: "refs/heads/main"}, true},
		{"ssh clone url", Event{Kind: "push", CloneURLs: []string{"git@github.com:team/app.git"}, Ref: "refs/heads/main"}, true},
		{"ssh scheme url", Event{Kind: "push", CloneURLs: []string{"ssh://git@github.com:22/team/app.git"}, Ref: "refs/heads/main"}, true},
		{"full name only", Event{Kind: "push", Repository: "team/app", Ref: "refs/heads/main"}, true},
		{"other branch", Event{Kind: "push", Repository: "team/app", Ref: "refs/heads/dev"}, false},
		{"other repository", Event{Kind: "push", CloneURLs: []string{"https://github.com/team/other.git"}, Repository: "team/other", Ref: "refs/heads/main"}, false},
		{"other host", Event{Kind: "push", CloneURLs: []string{"https://gitlab.com/team/app.git"}, Ref: "refs/heads/main"}, false},
		{"tag push", Event{Kind: "tag_push", Repository: "team/app", Ref: "refs/tags/v1"}, false},
		{"ping", Event{Kind: "ping", Repository: "team/app"}, false},
		{"pr opened on main", Event{Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: "opened", BaseRef: "main"}, true},
		{"pr synchronize full base ref", Event{Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: "synchronize", BaseRef: "refs/heads/main"}, true},
		{"pr closed", Event{Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: "closed", BaseRef: "main"}, true},
		{"pr on other base", Event{Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: "opened", BaseRef: "dev"}, false},
		{"pr labeled", Event{Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: "labeled", BaseRef: "main"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.Notify(tt.ev); got != tt.want {
				t.Errorf("Notify(%+v) = %v, want %v", tt.ev, got, tt.want)
			}
		})
	}

	tag := newTestGit(t, config.GitSource{URL: "https://github.com/team/app", Tag: "v1"}, GitCredentials{})
	if !tag.Notify(Event{Kind: "tag_push", Repository: "team/app", Ref: "refs/tags/v1"}) {
		t.Error("a tag source must match the push of its tag")
	}
	if tag.Notify(Event{Kind: "pull_request", Repository: "team/app", PullRequest: 1, Action: "opened", BaseRef: "main"}) {
		t.Error("a tag source must not preview pull requests")
	}
}

func TestGitPullRequestPreview(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "main\n"}, "a")
	work.Push(t)

	g := newTestGit(t, config.GitSource{URL: url, Previews: config.Previews{TrustedAuthors: []string{"alice"}}}, GitCredentials{})
	out := run(t, g)
	if rev := receive(t, out, 10*time.Second); rev.Commit != a {
		t.Fatalf("first revision %+v", rev)
	}
	work.Checkout(t, "feature")
	head := work.Commit(t, map[string]string{"f": "feature\n"}, "feature")
	work.Push(t)
	work.PushRef(t, "refs/pull/7/head")
	ev := Event{Provider: "github", Kind: "pull_request", Repository: "team/app", CloneURLs: []string{url},
		PullRequest: 7, PullRef: "refs/pull/7/head", Action: "opened", BaseRef: "main", Commit: head, Author: "alice"}
	if !g.Notify(ev) {
		t.Fatal("Notify did not match the pull request")
	}
	rev := receive(t, out, 10*time.Second)
	if !rev.Preview || rev.PullRequest != 7 || rev.Commit != head || rev.Ref != "refs/pull/7/head" || rev.Author != "alice" || !rev.TrustedAuthor {
		t.Fatalf("preview = %+v, want PR 7 at %s", rev, head)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "f")); got != "feature\n" {
		t.Errorf("preview content = %q", got)
	}

	// Bitbucket publishes no pull request ref: the head is fetched by id
	// (Data Center gives the full id) or, when Cloud gives an abbreviated
	// one, through the source branch the payload names.
	next := work.Commit(t, map[string]string{"f": "feature 2\n"}, "feature 2")
	work.Push(t)
	bb := Event{Provider: "bitbucket", Kind: "pull_request", CloneURLs: []string{url}, PullRequest: 8, Action: "opened", BaseRef: "main", Commit: next}
	if !g.Notify(bb) {
		t.Fatal("Notify did not match the bitbucket pull request")
	}
	rev = receive(t, out, 10*time.Second)
	if !rev.Preview || rev.PullRequest != 8 || rev.Commit != next || rev.TrustedAuthor {
		t.Fatalf("preview by commit id = %+v, want PR 8 at %s", rev, next)
	}
	third := work.Commit(t, map[string]string{"f": "feature 3\n"}, "feature 3")
	work.Push(t)
	cloud := Event{Provider: "bitbucket", Kind: "pull_request", CloneURLs: []string{url}, PullRequest: 9, Action: "opened",
		BaseRef: "main", Commit: third[:12], HeadRef: "refs/heads/feature"}
	if !g.Notify(cloud) {
		t.Fatal("Notify did not match the bitbucket cloud pull request")
	}
	rev = receive(t, out, 10*time.Second)
	if !rev.Preview || rev.PullRequest != 9 || rev.Commit != third {
		t.Fatalf("preview through the source branch = %+v, want PR 9 at %s", rev, third)
	}

	ev.Action = "closed"
	if !g.Notify(ev) {
		t.Fatal("Notify did not match the closed pull request")
	}
	eventually(t, 10*time.Second, "closed preview removed", func() bool {
		_, err := os.Stat(filepath.Join(g.dir, "previews", "7"))
		return os.IsNotExist(err)
	})
	// The closing is said once, to end the pull request's preview
	// environments.
	if rev := receive(t, out, 10*time.Second); !rev.Closed || !rev.Preview || rev.PullRequest != 7 || rev.Dir != "" {
		t.Fatalf("closed notice = %+v", rev)
	}
	// The followed branch was not disturbed by previews.
	expectNone(t, out, 200*time.Millisecond)
}

// TestGitNotifyOfACommitNotYetOnTheRemote: a webhook can arrive before the
// Git host's replica serving fetches shows its commit. The source then
// fetches again shortly, with backoff, instead of waiting for the next poll
// (an hour here), and gets the commit once the ref shows it.
func TestGitNotifyOfACommitNotYetOnTheRemote(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "a\n"}, "a")
	work.Push(t)

	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(time.Hour)}, GitCredentials{})
	// The retries span about 15 s from this first backoff: room for a push
	// on a loaded machine.
	g.minBackoff = 500 * time.Millisecond
	out := run(t, g)
	if rev := receive(t, out, 10*time.Second); rev.Commit != a {
		t.Fatalf("first revision %+v, want %s", rev, a)
	}
	// The webhook names b, which is committed but not pushed yet.
	b := work.Commit(t, map[string]string{"f": "b\n"}, "b")
	fetches := gauge(t, g.reg, "driftless_source_fetch_duration_seconds")
	if !g.Notify(Event{Provider: "github", Kind: "push", Repository: "team/app", CloneURLs: []string{url},
		Ref: "refs/heads/main", Commit: b}) {
		t.Fatal("Notify did not match the push of the followed branch")
	}
	eventually(t, 10*time.Second, "a fetch that misses the named commit", func() bool {
		return strings.Contains(g.log.String(), "webhook commit not found after fetch")
	})
	if got := gauge(t, g.reg, "driftless_source_fetch_duration_seconds"); got <= fetches {
		t.Fatalf("fetches = %v, want more than %v", got, fetches)
	}
	expectNone(t, out, 50*time.Millisecond)
	// Now the ref shows b; no webhook and no poll announces it.
	work.Push(t)
	if rev := receive(t, out, 20*time.Second); rev.Commit != b {
		t.Fatalf("revision after the ref caught up %+v, want %s", rev, b)
	}
}

// TestGitNotifyFloodFoldsFetches: a flood of webhooks folds into few
// fetches. 1,000 pushes naming one new commit, arriving during the fetch
// the first one starts and after it, make at most two fetches and one
// revision; 1,000 naming the commit the branch already points to make
// none; a force-push back to an older commit is still fetched. Fetches are
// counted by the Git server.
func TestGitNotifyFloodFoldsFetches(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "a\n"}, "a")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(time.Hour)}, GitCredentials{})
	out := run(t, g)
	if rev := receive(t, out, 10*time.Second); rev.Commit != a {
		t.Fatalf("first revision %+v, want %s", rev, a)
	}
	push := func(commit string) Event {
		return Event{Provider: "github", Kind: "push", Repository: "team/app", CloneURLs: []string{url}, Ref: "refs/heads/main", Commit: commit}
	}
	// flood sends 1,000 pushes from 8 senders, spread over about 250 ms.
	flood := func(commit string) {
		t.Helper()
		var wg sync.WaitGroup
		var refused atomic.Int64
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 125 {
					if !g.Notify(push(commit)) {
						refused.Add(1)
					}
					if i%5 == 0 {
						time.Sleep(10 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		if n := refused.Load(); n > 0 {
			t.Fatalf("%d pushes of the followed branch did not match", n)
		}
	}
	quiet := 2*g.settle + 500*time.Millisecond

	b := work.Commit(t, map[string]string{"f": "b\n"}, "b")
	work.Push(t)
	before := srv.Fetches("app")
	flood(b)
	if rev := receive(t, out, 10*time.Second); rev.Commit != b {
		t.Fatalf("revision %+v, want %s", rev, b)
	}
	expectNone(t, out, quiet)
	n := srv.Fetches("app") - before
	if n < 1 || n > 2 {
		t.Errorf("1,000 pushes naming one new commit made %d fetches, want 1 or 2", n)
	}
	t.Logf("1,000 pushes naming one new commit: %d fetch(es)", n)

	before = srv.Fetches("app")
	flood(b)
	expectNone(t, out, quiet)
	if n = srv.Fetches("app") - before; n != 0 {
		t.Errorf("1,000 pushes naming the commit the branch points to made %d fetches, want 0", n)
	}
	t.Logf("1,000 pushes naming the known commit: %d fetch(es)", n)

	// A force-push back to a: a is known, but not as the branch's head.
	work.Reset(t, a)
	work.ForcePush(t)
	if !g.Notify(push(a)) {
		t.Fatal("Notify did not match the force-push")
	}
	if rev := receive(t, out, 10*time.Second); rev.Commit != a {
		t.Fatalf("revision after the force-push back %+v, want %s", rev, a)
	}
}

// TestGitPreviewsFromForksAndAuthors: a pull request from a fork is not
// previewed unless the source allows forks, and with an author list only
// its authors' pull requests are; a closed one is always taken (its
// preview is dropped).
func TestGitPreviewsFromForksAndAuthors(t *testing.T) {
	pr := func(fork bool, author, action string) Event {
		return Event{Provider: "github", Kind: "pull_request", Repository: "team/app", PullRequest: 4, Action: action,
			BaseRef: "main", Fork: fork, Author: author}
	}
	for _, tc := range []struct {
		name     string
		previews config.Previews
		ev       Event
		want     bool
	}{
		{"same repository", config.Previews{}, pr(false, "mallory", "opened"), true},
		{"fork refused by default", config.Previews{}, pr(true, "mallory", "opened"), false},
		{"fork refused on synchronize", config.Previews{}, pr(true, "mallory", "synchronize"), false},
		{"fork allowed", config.Previews{Forks: true}, pr(true, "mallory", "opened"), true},
		{"author not listed", config.Previews{Authors: []string{"alice"}}, pr(false, "mallory", "opened"), false},
		{"author listed", config.Previews{Authors: []string{"alice"}}, pr(false, "alice", "reopened"), true},
		{"listed author from a fork", config.Previews{Authors: []string{"alice"}}, pr(true, "alice", "opened"), false},
		{"closed from a fork", config.Previews{}, pr(true, "mallory", "closed"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGit(t, config.GitSource{URL: "https://github.com/team/app", Previews: tc.previews}, GitCredentials{})
			if got := g.Notify(tc.ev); got != tc.want {
				t.Errorf("Notify = %v, want %v", got, tc.want)
			}
		})
	}
}
