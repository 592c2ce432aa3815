package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
)

func checkouts(t *testing.T, g *testGit) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(g.dir, "checkouts"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestGitPollsNewCommitsAndCleansCheckouts(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	work.Commit(t, map[string]string{"environments/prod.yaml": "a\n", "run.sh": "#!/bin/sh\n"}, "a")
	if err := os.Chmod(filepath.Join(work.Dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := work.Commit(t, nil, "exec bit")
	work.Push(t)

	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(150 * time.Millisecond)}, GitCredentials{})
	out := run(t, g)
	rev := receive(t, out, 10*time.Second)
	if rev.Commit != a || rev.Source != "app" || rev.Ref != "refs/heads/main" || rev.Preview {
		t.Fatalf("first revision = %+v, want commit %s", rev, a)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "environments/prod.yaml")); got != "a\n" {
		t.Errorf("checked out content = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(rev.Dir, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh should be executable: %v %v", fi, err)
	}
	// Unchanged commit: polls happen, nothing is sent. The second fetch is
	// awaited rather than expected within a fixed time: on a loaded machine
	// one fetch can outlast several poll intervals.
	expectNone(t, out, 500*time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n := gauge(t, g.reg, "driftless_source_fetch_duration_seconds")
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetches observed = %v, want polling to have fetched again", n)
		}
	}
	expectNone(t, out, 100*time.Millisecond)

	b := work.Commit(t, map[string]string{"environments/prod.yaml": "b\n"}, "b")
	work.Push(t)
	rev = receive(t, out, 10*time.Second)
	if rev.Commit != b || readFile(t, filepath.Join(rev.Dir, "environments/prod.yaml")) != "b\n" {
		t.Fatalf("second revision = %+v, want %s", rev, b)
	}
	c := work.Commit(t, map[string]string{"environments/prod.yaml": "c\n"}, "c")
	work.Push(t)
	rev = receive(t, out, 10*time.Second)
	if rev.Commit != c {
		t.Fatalf("third revision = %+v, want %s", rev, c)
	}
	d := work.Commit(t, map[string]string{"environments/prod.yaml": "d\n"}, "d")
	work.Push(t)
	if rev = receive(t, out, 10*time.Second); rev.Commit != d {
		t.Fatalf("fourth revision = %+v, want %s", rev, d)
	}
	// Kept: the current checkout and the last two handed to the reader
	// (it may still be working on the older one). The first is gone.
	want := []string{b, c, d}
	sort.Strings(want)
	if got := checkouts(t, g); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("checkouts = %v, want %v", got, want)
	}
	if up := gauge(t, g.reg, "driftless_source_up"); up != 1 {
		t.Errorf("source_up = %v", up)
	}
	if ts := gauge(t, g.reg, "driftless_source_last_success_timestamp_seconds"); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success = %v", ts)
	}
}

func TestGitSubPath(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	sha := work.Commit(t, map[string]string{"deploy/environments/prod.yaml": "x\n", "README": "r\n"}, "a")
	work.Push(t)

	t.Run("present", func(t *testing.T) {
		g := newTestGit(t, config.GitSource{URL: url, Path: "deploy"}, GitCredentials{})
		rev, err := g.pass(context.Background(), "")
		if err != nil || rev == nil {
			t.Fatalf("pass = %+v, %v", rev, err)
		}
		if filepath.Base(rev.Dir) != "deploy" || readFile(t, filepath.Join(rev.Dir, "environments/prod.yaml")) != "x\n" {
			t.Errorf("revision dir = %s", rev.Dir)
		}
		if rev.Commit != sha {
			t.Errorf("commit = %s, want %s", rev.Commit, sha)
		}
		if _, err := os.Stat(filepath.Join(rev.Dir, "..", "README")); !os.IsNotExist(err) {
			t.Errorf("files outside the sub-path were checked out: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		g := newTestGit(t, config.GitSource{URL: url, Path: "nope"}, GitCredentials{})
		rev, err := g.pass(context.Background(), "")
		if !errors.Is(err, ErrPathNotFound) || rev != nil {
			t.Fatalf("pass = %+v, %v; want ErrPathNotFound", rev, err)
		}
		if up := gauge(t, g.reg, "driftless_source_up"); up != 0 {
			t.Errorf("source_up = %v, want 0", up)
		}
	})
	t.Run("outside", func(t *testing.T) {
		_, err := NewGit(GitOptions{Name: "x", Config: config.GitSource{URL: url, Path: "../etc"}, Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "inside the repository") {
			t.Fatalf("NewGit with ../etc = %v", err)
		}
	})
}

func TestGitFollowsTag(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"v": "1\n"}, "a")
	work.Push(t)
	work.Tag(t, "stable")
	b := work.Commit(t, map[string]string{"v": "2\n"}, "b")
	work.Push(t)

	g := newTestGit(t, config.GitSource{URL: url, Tag: "stable"}, GitCredentials{})
	rev, err := g.pass(context.Background(), "")
	if err != nil || rev == nil || rev.Commit != a || rev.Ref != "refs/tags/stable" {
		t.Fatalf("pass = %+v, %v; want the tagged commit %s", rev, err, a)
	}
	// A new commit on the branch does not move the tag.
	if rev, err := g.pass(context.Background(), ""); err != nil || rev != nil {
		t.Fatalf("pass after branch commit = %+v, %v; want nothing", rev, err)
	}
	work.Tag(t, "stable")
	rev, err = g.pass(context.Background(), "")
	if err != nil || rev == nil || rev.Commit != b || readFile(t, filepath.Join(rev.Dir, "v")) != "2\n" {
		t.Fatalf("pass after moving the tag = %+v, %v; want %s", rev, err, b)
	}
}

func TestGitForcePush(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "a\n"}, "a")
	b := work.Commit(t, map[string]string{"f": "b\n"}, "b")
	work.Push(t)

	g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{})
	if rev, err := g.pass(context.Background(), ""); err != nil || rev == nil || rev.Commit != b {
		t.Fatalf("pass = %+v, %v; want %s", rev, err, b)
	}
	work.Reset(t, a)
	c := work.Commit(t, map[string]string{"f": "c\n"}, "rewritten")
	work.ForcePush(t)
	rev, err := g.pass(context.Background(), "")
	if err != nil || rev == nil || rev.Commit != c || readFile(t, filepath.Join(rev.Dir, "f")) != "c\n" {
		t.Fatalf("pass after force-push = %+v, %v; want %s", rev, err, c)
	}
	// Going back to an earlier commit is a new revision too, and the one
	// it replaces stays on disk as the previous.
	work.Reset(t, b)
	work.ForcePush(t)
	rev, err = g.pass(context.Background(), "")
	if err != nil || rev == nil || rev.Commit != b || readFile(t, filepath.Join(rev.Dir, "f")) != "b\n" {
		t.Fatalf("pass after reverting = %+v, %v; want %s", rev, err, b)
	}
	want := []string{b, c}
	sort.Strings(want)
	if got := checkouts(t, g); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("checkouts = %v, want %v", got, want)
	}
}

// TestGitSlowReader: while the reader is busy, newer commits are fetched;
// the revision waiting in the channel keeps its checkout, and the reader
// then gets the newest commit, not the ones in between.
func TestGitSlowReader(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	a := work.Commit(t, map[string]string{"f": "a\n"}, "a")
	work.Push(t)
	g := newTestGit(t, config.GitSource{URL: url, Interval: config.Duration(100 * time.Millisecond)}, GitCredentials{})
	out := run(t, g)
	eventually(t, 10*time.Second, "first revision in the channel", func() bool { return len(out) == 1 })
	for _, content := range []string{"b\n", "c\n", "d\n"} {
		sha := work.Commit(t, map[string]string{"f": content}, content)
		work.Push(t)
		eventually(t, 10*time.Second, "checkout of "+sha, func() bool {
			_, err := os.Stat(filepath.Join(g.dir, "checkouts", sha))
			return err == nil
		})
	}
	last := work.Head(t)
	rev := <-out
	if rev.Commit != a || readFile(t, filepath.Join(rev.Dir, "f")) != "a\n" {
		t.Fatalf("waiting revision %+v lost its checkout", rev)
	}
	if rev = receive(t, out, 10*time.Second); rev.Commit != last {
		t.Fatalf("next revision %s, want the newest %s", rev.Commit, last)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "f")); got != "d\n" {
		t.Errorf("newest content %q", got)
	}
}

func TestGitFileAndPlainPath(t *testing.T) {
	srv := gitserver.New(t)
	srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	sha := work.Commit(t, map[string]string{"f": "x\n"}, "a")
	work.Push(t)
	for name, url := range map[string]string{"file": "file://" + srv.Dir("app"), "plain": srv.Dir("app")} {
		t.Run(name, func(t *testing.T) {
			g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{})
			rev, err := g.pass(context.Background(), "")
			if err != nil || rev == nil || rev.Commit != sha {
				t.Fatalf("pass = %+v, %v; want %s", rev, err, sha)
			}
		})
	}
}

func TestGitCompactsTheCacheRepository(t *testing.T) {
	srv := gitserver.New(t)
	url := srv.CreateRepo("app")
	work := srv.Clone(t, "app")
	g := newTestGit(t, config.GitSource{URL: url}, GitCredentials{})
	g.maxPacks = 3
	maxSeen := 0
	for i := range 8 {
		sha := work.Commit(t, map[string]string{"f": strings.Repeat("x", i+1)}, "c")
		work.Push(t)
		rev, err := g.pass(context.Background(), "")
		if err != nil || rev == nil || rev.Commit != sha {
			t.Fatalf("pass %d = %+v, %v; want %s", i, rev, err, sha)
		}
		if got := readFile(t, filepath.Join(rev.Dir, "f")); got != strings.Repeat("x", i+1) {
			t.Fatalf("pass %d content %q", i, got)
		}
		maxSeen = max(maxSeen, g.packCount())
	}
	if maxSeen > g.maxPacks {
		t.Errorf("the cache repository reached %d packs, limit %d", maxSeen, g.maxPacks)
	}
	if _, err := os.Stat(filepath.Join(g.dir, "repo.git.old")); !os.IsNotExist(err) {
		t.Errorf("old repository left behind: %v", err)
	}
}
