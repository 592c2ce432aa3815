package sources

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	gitconfig "github.com/go-git/go-git/v5/config"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/need"
)

// peakHeap samples the Go heap while fn runs and returns the highest value.
func peakHeap(fn func()) uint64 {
	samples := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			rtmetrics.Read(samples)
			mu.Lock()
			peak = max(peak, samples[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return peak
}

// BenchmarkIncrementalFetch fetches one new commit of a 20,000-commit
// repository over smart HTTP: go-git in this process, go-git in a process
// of its own (for a peak RSS comparable to git's), and the git command line.
func BenchmarkIncrementalFetch(b *testing.B) {
	if testing.Short() {
		need.Optional(b, "builds a 20,000-commit repository; skipped with -short")
	}
	srv, url := benchServer(b)
	serverRepo := srv.Dir("bench")
	commits := 0
	// nextCommit pushes one more commit, the one each fetch brings.
	nextCommit := func(b *testing.B) {
		commits++
		addCommit(b, serverRepo, commits)
	}
	// The peak RSS of a child is measured by GNU time, a small process:
	// the rusage of a child started directly from this (large) process
	// would count this process's memory, mapped at the moment of the fork.
	timeBin, timeErr := exec.LookPath("time")
	rssFile := filepath.Join(b.TempDir(), "rss")

	b.Run("go-git", func(b *testing.B) {
		g := newBenchGit(b, url)
		ctx := context.Background()
		repo, err := g.openRepo()
		if err != nil {
			b.Fatal(err)
		}
		spec := gitconfig.RefSpec(fmt.Sprintf("+%s:%s", g.remoteRef, g.localRef))
		var peak uint64
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			nextCommit(b)
			runtime.GC()
			b.StartTimer()
			p := peakHeap(func() {
				if err := g.fetch(ctx, repo, spec); err != nil {
					b.Fatal(err)
				}
			})
			peak = max(peak, p)
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	})

	b.Run("go-git-process", func(b *testing.B) {
		if timeErr != nil {
			need.Missing(b, "GNU time is not installed; it measures the peak RSS")
		}
		g := newBenchGit(b, url)
		exe, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		timedFetches(b, nextCommit, rssFile, func() *exec.Cmd {
			cmd := exec.Command(timeBin, "-f", "%M", "-o", rssFile, exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), benchChildEnv+"="+g.dir+"\n"+url)
			return cmd
		})
	})

	b.Run("git-cli", func(b *testing.B) {
		if timeErr != nil {
			need.Missing(b, "GNU time is not installed; it measures the peak RSS")
		}
		dir := filepath.Join(b.TempDir(), "cli.git")
		if _, err := gitserver.Git("", "clone", "--quiet", "--bare", url, dir); err != nil {
			b.Fatal(err)
		}
		timedFetches(b, nextCommit, rssFile, func() *exec.Cmd {
			cmd := exec.Command(timeBin, "-f", "%M", "-o", rssFile, "git", "fetch", "--quiet", url, "+refs/heads/main:refs/remotes/origin/main")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
			return cmd
		})
	})

	b.Run("go-git-pass", func(b *testing.B) {
		// A whole pass: fetch, then check out the new commit's 3,000 files.
		g := newBenchGit(b, url)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			nextCommit(b)
			b.StartTimer()
			rev, err := g.syncMain(context.Background(), "")
			if err != nil || rev == nil {
				b.Fatalf("pass = %v, %v", rev, err)
			}
		}
	})
}

// readRSS reads the peak RSS in KiB that GNU time wrote.
func readRSS(b *testing.B, path string) int64 {
	b.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var kib int64
	if _, err := fmt.Sscan(strings.TrimSpace(string(raw)), &kib); err != nil {
		b.Fatalf("parse peak RSS %q: %v", raw, err)
	}
	return kib
}

// newBenchGit makes a Git source on url and does its first (full) clone.
func newBenchGit(b *testing.B, url string) *Git {
	b.Helper()
	g, err := NewGit(GitOptions{Name: "bench", Config: config.GitSource{URL: url}, Dir: filepath.Join(b.TempDir(), "state")})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := g.syncMain(context.Background(), ""); err != nil {
		b.Fatal(err)
	}
	b.Logf("first clone and checkout: %s", time.Since(start))
	return g
}

// benchChildEnv, when set to "DIR\nURL", makes the test binary do one
// go-git incremental fetch and exit, so its peak RSS can be measured alone.
const benchChildEnv = "DRIFTLESS_BENCH_FETCH_CHILD"

func benchChild(spec string) int {
	dir, url, _ := strings.Cut(spec, "\n")
	g, err := NewGit(GitOptions{Name: "bench", Config: config.GitSource{URL: url}, Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repo, err := g.openRepo()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	spec2 := gitconfig.RefSpec(fmt.Sprintf("+%s:%s", g.remoteRef, g.localRef))
	if err := g.fetch(context.Background(), repo, spec2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// timedFetches runs one fetch command per iteration, each after a new
// commit pushed outside the timer, and reports the largest peak RSS that
// GNU time wrote to rssFile.
func timedFetches(b *testing.B, nextCommit func(*testing.B), rssFile string, fetch func() *exec.Cmd) {
	var peak int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		nextCommit(b)
		b.StartTimer()
		cmd := fetch()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v: %s", cmd.Args[len(cmd.Args)-1], err, out)
		}
		peak = max(peak, readRSS(b, rssFile))
	}
	b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
}
