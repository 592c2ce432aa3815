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
