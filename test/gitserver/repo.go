package gitserver

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Delete is a file content that, given to Commit, removes the file.
const Delete = "\x00gitserver:delete\x00"

// Repo is a work clone of a server repository: a place to commit files and
// push them, with the git command line.
type Repo struct {
	// Dir is the work tree.
	Dir string
	// Name is the repository's name on the server.
	Name string
	// Branch is the branch commits go to (main unless Checkout changed it).
	Branch string
}

// Clone makes a work clone of repository name (which must exist, and may be
// empty) in a temporary folder of t.
func (s *Server) Clone(t testing.TB, name string) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	run(t, "", "clone", "--quiet", s.AuthURL(name), dir)
	run(t, dir, "config", "commit.gpgsign", "false")
	run(t, dir, "symbolic-ref", "HEAD", "refs/heads/main")
	return &Repo{Dir: dir, Name: name, Branch: "main"}
}

// Commit writes files (path relative to the work tree → content; the
// content Delete removes the path), commits every change with msg, even
// when nothing changed, and returns the new commit id. It does not push.
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	r.write(t, files)
	run(t, r.Dir, "add", "--all")
	run(t, r.Dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	return r.Head(t)
}

// CommitSigned is Commit with the commit signed by key (an OpenPGP
// signature, as signing_keys checks it); a nil key makes an unsigned
// commit. The git command line signs only through gpg, so this commit is
// made with go-git.
func (r *Repo) CommitSigned(t testing.TB, files map[string]string, key *openpgp.Entity, msg string) string {
	t.Helper()
	r.write(t, files)
	repo, err := git.PlainOpen(r.Dir)
	if err != nil {
		t.Fatalf("gitserver: open %s: %v", r.Dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatalf("gitserver: work tree of %s: %v", r.Dir, err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatalf("gitserver: add: %v", err)
	}
	sig := &object.Signature{Name: "t", Email: "t@driftless.invalid", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		t.Fatalf("gitserver: signed commit: %v", err)
	}
	return h.String()
}

// write writes files into the work tree (Delete removes the path).
func (r *Repo) write(t testing.TB, files map[string]string) {
	t.Helper()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(r.Dir, filepath.FromSlash(p))
		if files[p] == Delete {
			if err := os.RemoveAll(full); err != nil {
				t.Fatalf("gitserver: remove %s: %v", p, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatalf("gitserver: create folder of %s: %v", p, err)
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			t.Fatalf("gitserver: write %s: %v", p, err)
		}
	}
}

// Head returns the commit id of the work tree's HEAD.
func (r *Repo) Head(t testing.TB) string {
	t.Helper()
	sha := run(t, r.Dir, "rev-parse", "HEAD")
	if !shaPattern.MatchString(sha) {
		t.Fatalf("gitserver: rev-parse HEAD gave %q", sha)
	}
	return sha
}

// Git runs a git command in the work tree and returns its output; it fails
// the test on error. It is the escape hatch for what the helpers lack.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, r.Dir, args...)
}

// Push pushes the current branch to the server.
func (r *Repo) Push(t testing.TB) {
	t.Helper()
	run(t, r.Dir, "push", "--quiet", "origin", "HEAD:refs/heads/"+r.Branch)
}

// ForcePush pushes the current branch to the server even when that rewrites
// its history.
func (r *Repo) ForcePush(t testing.TB) {
	t.Helper()
	run(t, r.Dir, "push", "--quiet", "--force", "origin", "HEAD:refs/heads/"+r.Branch)
}

// PushRef pushes HEAD to any ref of the server, for example
// "refs/pull/7/head" to stand for a pull request's head.
func (r *Repo) PushRef(t testing.TB, ref string) {
	t.Helper()
	run(t, r.Dir, "push", "--quiet", "--force", "origin", "HEAD:"+ref)
}

// DeleteBranch deletes branch on the server.
func (r *Repo) DeleteBranch(t testing.TB, branch string) {
	t.Helper()
	run(t, r.Dir, "push", "--quiet", "origin", "--delete", "refs/heads/"+branch)
}

// Tag creates (or moves, with force) the annotated tag name on HEAD and
// pushes it.
func (r *Repo) Tag(t testing.TB, name string) {
	t.Helper()
	run(t, r.Dir, "tag", "--force", "-a", "-m", "tag "+name, name)
	run(t, r.Dir, "push", "--quiet", "--force", "origin", "refs/tags/"+name)
}

// Checkout switches the work tree to branch, creating it from HEAD when it
// does not exist; later commits and pushes go to it.
func (r *Repo) Checkout(t testing.TB, branch string) {
	t.Helper()
	if _, err := Git(r.Dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		run(t, r.Dir, "checkout", "--quiet", "-b", branch)
	} else {
		run(t, r.Dir, "checkout", "--quiet", branch)
	}
	r.Branch = branch
}

// Reset moves the current branch and work tree to commit (for example
// "HEAD~1"), to prepare a history rewrite pushed with ForcePush.
func (r *Repo) Reset(t testing.TB, commit string) {
	t.Helper()
	run(t, r.Dir, "reset", "--quiet", "--hard", commit)
}
