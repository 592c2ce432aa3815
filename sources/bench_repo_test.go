package sources

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
)

// The benchmark repository: benchCommits commits over benchFiles files,
// built once with git fast-import and cached under the system temp folder.
const (
	benchCommits = 20000
	benchFiles   = 3000
	benchCache   = "driftless-bench-repo-v1.git"
)

// benchRepo returns the cached bare repository, building it when missing.
func benchRepo(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), benchCache)
	if _, err := os.Stat(filepath.Join(dir, "driftless-complete")); err == nil {
		return dir
	}
	tmp, err := os.MkdirTemp(os.TempDir(), benchCache+".tmp-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if _, err := gitserver.Git("", "init", "--quiet", "--bare", "--initial-branch=main", tmp); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = tmp
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	for i := 1; i <= benchCommits; i++ {
		msg := fmt.Sprintf("commit %d\n", i)
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Bench <bench@driftless.invalid> %d +0000\ndata %d\n%s", i, 1_600_000_000+i*60, len(msg), msg)
		if i > 1 {
			fmt.Fprintf(w, "from :%d\n", i-1)
			writeBenchFile(w, (i*7919)%benchFiles, i)
		} else {
			for f := range benchFiles {
				writeBenchFile(w, f, 0)
			}
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git fast-import: %v", err)
	}
	if _, err := gitserver.Git(tmp, "repack", "-a", "-d", "-q"); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "driftless-complete"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		b.Fatal(err)
	}
	b.Logf("built benchmark repository (%d commits, %d files) in %s", benchCommits, benchFiles, time.Since(start))
	return dir
}

func writeBenchFile(w *bufio.Writer, f, rev int) {
	content := fmt.Sprintf("# file %d, revision %d\n%s\n", f, rev, strings.Repeat("key: value line of configuration\n", 6))
	fmt.Fprintf(w, "M 100644 inline d%02d/f%04d.yaml\ndata %d\n%s\n", f%60, f, len(content), content)
}

// benchServer serves a copy of the cached repository (hard links: cheap)
// and returns the server and the repository's URL.
func benchServer(b *testing.B) (*gitserver.Server, string) {
	src := benchRepo(b)
	srv := gitserver.New(b)
	if _, err := gitserver.Git("", "clone", "--quiet", "--bare", "--local", src, srv.Dir("bench")); err != nil {
		b.Fatal(err)
	}
	if _, err := gitserver.Git(srv.Dir("bench"), "config", "http.receivepack", "true"); err != nil {
		b.Fatal(err)
	}
	return srv, srv.RepoURL("bench")
}

// addCommit adds one commit changing one file on main, on the server side.
func addCommit(b *testing.B, repo string, n int) {
	b.Helper()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = repo
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	msg := fmt.Sprintf("bench %d\n", n)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@driftless.invalid> %d +0000\ndata %d\n%sfrom refs/heads/main^0\n", time.Now().Unix(), len(msg), msg)
	writeBenchFile(w, n%benchFiles, benchCommits+n)
	w.Flush()
	cmd.Stdin = strings.NewReader(sb.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("add commit: %v: %s", err, out)
	}
}
