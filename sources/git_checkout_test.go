package sources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

// TestGitCheckoutOfAnOldCommit: a commit whose checkout the polling loop
// has cleaned up can be checked out again from the cache repository (a
// manual rollback to it); unknown and foreign revisions are refused.
func TestGitCheckoutOfAnOldCommit(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"environments/prod.yaml": "a\n"}, "a")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(100 * time.Millisecond)}, GitCredentials{})
	out := run(t, g)
	first := receive(t, out, 10*time.Second)
	for _, content := range []string{"b\n", "c\n", "d\n"} {
		work.Commit(t, map[string]string{"environments/prod.yaml": content}, content)
		work.Push(t)
		receive(t, out, 10*time.Second)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Fatalf("the first checkout should have been cleaned up: %v", err)
	}
	got, err := g.Checkout(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != a || got.Dir == first.Dir {
		t.Fatalf("checkout = %+v", got)
	}
	if s := readFile(t, filepath.Join(got.Dir, "environments/prod.yaml")); s != "a\n" {
		t.Fatalf("restored content = %q, want a", s)
	}
	for name, rev := range map[string]Revision{
		"unknown commit": {Source: "app", Commit: "0123456789012345678901234567890123456789"},
		"short commit":   {Source: "app", Commit: a[:12]},
		"other source":   {Source: "elsewhere", Commit: a},
	} {
		if _, err := g.Checkout(context.Background(), rev); err == nil {
			t.Errorf("%s: checkout succeeded", name)
		}
	}
}

// TestGitCheckoutLinksUnchangedFiles: a new checkout hard-links the files
// its commit did not change to the previous checkout, and writes changed
// ones (content or mode) anew, leaving the previous checkout untouched.
func TestGitCheckoutLinksUnchangedFiles(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	work.Commit(t, map[string]string{"same": "1\n", "changed": "1\n", "mode": "1\n"}, "a")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{})
	first, err := g.pass(context.Background(), "")
	if err != nil || first == nil {
		t.Fatalf("pass = %+v, %v", first, err)
	}
	if err := os.Chmod(filepath.Join(work.Dir, "mode"), 0o755); err != nil {
		t.Fatal(err)
	}
	work.Commit(t, map[string]string{"changed": "2\n"}, "b")
	work.Push(t)
	second, err := g.pass(context.Background(), "")
	if err != nil || second == nil {
		t.Fatalf("pass = %+v, %v", second, err)
	}
	stat := func(rev *Revision, name string) os.FileInfo {
		fi, err := os.Stat(filepath.Join(rev.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if !os.SameFile(stat(first, "same"), stat(second, "same")) {
		t.Error("an unchanged file was written again instead of linked")
	}
	if os.SameFile(stat(first, "changed"), stat(second, "changed")) || readFile(t, filepath.Join(second.Dir, "changed")) != "2\n" {
		t.Error("a changed file shares the old file")
	}
	if readFile(t, filepath.Join(first.Dir, "changed")) != "1\n" {
		t.Error("the first checkout changed")
	}
	if os.SameFile(stat(first, "mode"), stat(second, "mode")) || stat(second, "mode").Mode().Perm() != 0o755 || stat(first, "mode").Mode().Perm() != 0o644 {
		t.Error("a file whose mode changed shares the old file")
	}
}
