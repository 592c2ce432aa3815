package sources

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

// TestGitPullHeadAndMergedFrom reads a pull request's head from its ref on
// a real Git server, and tells which later commits of the branch bring
// exactly that head: itself (a fast-forward) and a merge commit onto an
// unchanged base, not a merge onto a base that moved nor a squash.
func TestGitPullHeadAndMergedFrom(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	work.Commit(t, map[string]string{"f": "base\n"}, "base")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(100 * time.Millisecond)}, GitCredentials{})
	out := run(t, g)
	receive(t, out, 10*time.Second)
	ctx := context.Background()

	work.Checkout(t, "feature")
	head := work.Commit(t, map[string]string{"f": "feature\n"}, "feature")
	work.PushRef(t, "refs/pull/1/head")
	ev := Event{Provider: "github", Kind: "comment", Repository: "team/app", CloneURLs: []string{url}, PullRequest: 1, PullRef: "refs/pull/1/head"}
	got, ok, err := g.PullHead(ctx, ev)
	if err != nil || !ok || got != head {
		t.Fatalf("PullHead = %q %v %v, want %s", got, ok, err, head)
	}
	// GitLab's Note Hook names a commit of its own: the merge request's
	// ref on the Git server decides, not the payload.
	work.PushRef(t, "refs/merge-requests/4/head")
	base := work.Git(t, "rev-parse", "HEAD~1")
	ev = Event{Provider: "gitlab", Kind: "comment", Repository: "team/app", CloneURLs: []string{url}, PullRequest: 4, PullRef: "refs/merge-requests/4/head", Commit: strings.TrimSpace(base)}
	if got, ok, err := g.PullHead(ctx, ev); err != nil || !ok || got != head {
		t.Fatalf("PullHead of a GitLab merge request = %q %v %v, want its ref's head %s, not the payload's %s", got, ok, err, head, ev.Commit)
	}
	if _, ok, _ := g.PullHead(ctx, Event{Provider: "github", Repository: "team/other", CloneURLs: []string{url + "x"}, PullRequest: 1, PullRef: "refs/pull/1/head"}); ok {
		t.Fatal("PullHead answered for another repository")
	}
	// A sender that publishes no pull request ref (its provider's row has
	// none): no head to read, and an error that says so; the commit the
	// payload names is not taken instead.
	bb := Event{Provider: "bitbucket", Kind: "comment", Repository: "team/app", CloneURLs: []string{url}, PullRequest: 1, Commit: head}
	if got, ok, err := g.PullHead(ctx, bb); err == nil || !ok || got != "" ||
		err.Error() != "pull request 1: bitbucket publishes no pull request ref to read its head from" {
		t.Fatalf("PullHead without a pull request ref = %q %v %v, want the error", got, ok, err)
	}

	// A merge commit onto the unchanged base: main gets a no-fast-forward merge.
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--no-ff", "-m", "merge pull request 1", "feature")
	merge := work.Head(t)
	work.Push(t)
	// A merge onto a base that moved meanwhile brings more than the head.
	work.Reset(t, merge+"~1")
	work.Commit(t, map[string]string{"h": "moved\n"}, "base moved")
	work.Git(t, "merge", "--quiet", "--no-ff", "-m", "merge onto a moved base", "feature")
	moved := work.Head(t)
	work.ForcePush(t)
	for rev := receive(t, out, 10*time.Second); rev.Commit != moved; rev = receive(t, out, 10*time.Second) {
	}
	if _, err := g.Checkout(ctx, Revision{Source: g.Name(), Commit: merge}); err != nil {
		t.Fatal(err) // the merge commit is in the cache repository
	}
	for name, c := range map[string]struct {
		commit string
		want   bool
	}{
		"the head itself":                 {head, true},
		"a merge onto the unchanged base": {merge, true},
		"a merge onto a moved base":       {moved, false},
	} {
		got, err := g.MergedFrom(ctx, Revision{Source: g.Name(), Commit: c.commit}, head)
		if err != nil || got != c.want {
			t.Errorf("%s: MergedFrom = %v %v, want %v", name, got, err, c.want)
		}
	}
}
