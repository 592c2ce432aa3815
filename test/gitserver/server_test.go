package gitserver

import (
	"strings"
	"sync"
	"testing"
)

func TestPushCloneAndEvents(t *testing.T) {
	srv := New(t)
	var mu sync.Mutex
	var events []PushEvent
	srv.OnPush(func(ev PushEvent) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	})
	url := srv.CreateRepo("app")
	if url != srv.URL()+"/app.git" {
		t.Fatalf("url = %q", url)
	}
	work := srv.Clone(t, "app")
	first := work.Commit(t, map[string]string{"a.txt": "one\n", "dir/b.txt": "two\n"}, "first")
	work.Push(t)
	second := work.Commit(t, map[string]string{"a.txt": Delete}, "second")
	work.Push(t)
	work.Tag(t, "v1")
	work.Reset(t, first)
	third := work.Commit(t, map[string]string{"c.txt": "three\n"}, "rewrite")
	work.ForcePush(t)
	work.PushRef(t, "refs/pull/3/head")
	work.DeleteBranch(t, "main")

	mu.Lock()
	got := append([]PushEvent(nil), events...)
	mu.Unlock()
	tagSHA, err := Git(srv.Dir("app"), "rev-parse", "refs/tags/v1")
	if err != nil {
		t.Fatal(err)
	}
	want := []PushEvent{
		{Repo: "app", Ref: "refs/heads/main", Before: ZeroSHA, After: first},
		{Repo: "app", Ref: "refs/heads/main", Before: first, After: second},
		{Repo: "app", Ref: "refs/tags/v1", Before: ZeroSHA, After: tagSHA},
		{Repo: "app", Ref: "refs/heads/main", Before: second, After: third},
		{Repo: "app", Ref: "refs/pull/3/head", Before: ZeroSHA, After: third},
		{Repo: "app", Ref: "refs/heads/main", Before: third, After: ZeroSHA},
	}
	if len(got) != len(want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[0].Created() || !got[5].Deleted() {
		t.Errorf("Created/Deleted wrong: %+v", got)
	}

	// A fresh clone sees what was pushed: the pull request ref's content.
	other := srv.Clone(t, "app")
	out := other.Git(t, "ls-remote", "origin")
	if !strings.Contains(out, third+"\trefs/pull/3/head") || strings.Contains(out, "refs/heads/main") {
		t.Errorf("ls-remote = %q", out)
	}
}

func TestRequireAuth(t *testing.T) {
	srv := New(t)
	srv.CreateRepo("private")
	srv.RequireAuth("bot", "s3cret-token")
	work := srv.Clone(t, "private")
	sha := work.Commit(t, map[string]string{"x": "y"}, "x")
	work.Push(t)
	if _, err := Git(t.TempDir(), "ls-remote", srv.RepoURL("private")); err == nil {
		t.Fatal("ls-remote without credentials succeeded")
	}
	out, err := Git(t.TempDir(), "ls-remote", srv.AuthURL("private"))
	if err != nil || !strings.Contains(out, sha) {
		t.Fatalf("ls-remote with credentials: %q, %v", out, err)
	}
}
