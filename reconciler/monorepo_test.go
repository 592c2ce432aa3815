package reconciler

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/test/gitserver"
)

// runGitSources starts one Git source per path of the repository at url,
// each feeding r, and returns a stop function that waits for all of them.
func runGitSources(t *testing.T, r *Reconciler, url string, paths ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan struct{}, len(paths)+1)
	for _, p := range paths {
		g, err := sources.NewGit(sources.GitOptions{Name: p, Dir: filepath.Join(t.TempDir(), p), Logger: zerolog.Nop(),
			Config: config.GitSource{URL: url, Branch: "main", Path: p, Interval: config.Duration(200 * time.Millisecond)}})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = g.Run(ctx, revs); done <- struct{}{} }()
	}
	go func() { _ = r.Run(ctx, revs); done <- struct{}{} }()
	return func() {
		cancel()
		for range len(paths) + 1 {
			<-done
		}
	}
}

// TestMonorepoSourcesOnSubPaths is issue 19's monorepo scenario on a real
// Git server: two sources on sub-paths of one repository. A change rolled
// back under staging/ is not applied again by a commit that touches only
// prod/ or the docs, nor after a restart; and such a commit is nothing at
// all for the staging source: no run, no history entry, no new revision.
func TestMonorepoSourcesOnSubPaths(t *testing.T) {
	f := newFixture(t)
	git := gitserver.New(t)
	url := git.CreateRepo("mono")
	work := git.Clone(t, "mono")
	staging := func(content, extra string) string {
		return envYAML("staging", []string{"s1"}, nil, etc+fileRes("/etc/a.conf", content), extra)
	}
	prod := func(content string) string {
		return envYAML("prod", []string{"p1"}, nil, etc+fileRes("/etc/p.conf", content), "")
	}
	v1 := work.Commit(t, map[string]string{"staging/environments/staging.yaml": staging("one", ""),
		"prod/environments/prod.yaml": prod("one"), "docs/README.md": "docs\n"}, "v1")
	work.Push(t)
	stop := runGitSources(t, f.r, url, "staging", "prod")
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	eventually(t, "v1 applied to both", func() bool { return f.applied("staging") == v1 && f.applied("prod") == v1 })

	v2 := work.Commit(t, map[string]string{"staging/environments/staging.yaml": staging("two", "verify:\n  - command: \"false\"\n")}, "v2: fails")
	work.Push(t)
	eventually(t, "v2 quarantined in staging", func() bool {
		st, _ := f.r.Environment("staging")
		return slices.Contains(st.Quarantined, v2) && st.State == status.StateRolledBack
	})
	runs := func(env string) int {
		h, err := f.r.History(env, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	stagingRuns := runs("staging")

	v3 := work.Commit(t, map[string]string{"prod/environments/prod.yaml": prod("two")}, "v3: prod only")
	work.Push(t)
	eventually(t, "v3 applied to prod", func() bool { return f.applied("prod") == v3 })
	v4 := work.Commit(t, map[string]string{"docs/README.md": "more docs\n"}, "v4: docs only")
	work.Push(t)
	time.Sleep(time.Second) // five polls of each source
	prodRuns := runs("prod")
	time.Sleep(time.Second)
	if got := f.hostFile("s1", "/etc/a.conf"); got != "one" {
		t.Errorf("staging's a.conf = %q after commits outside staging/; the rolled-back change came back", got)
	}
	if n := runs("staging"); n != stagingRuns {
		t.Errorf("staging's history grew from %d to %d runs on commits outside staging/", stagingRuns, n)
	}
	if n := runs("prod"); n != prodRuns {
		t.Errorf("prod's history grew from %d to %d runs on a docs-only commit", prodRuns, n)
	}
	if f.applied("staging") != v1 || f.applied("prod") != v3 {
		t.Errorf("applied: staging %s, prod %s; want v1 %s and v3 %s (a commit changing nothing under a path is no revision of it)",
			f.applied("staging"), f.applied("prod"), v1[:8], v3[:8])
	}

	// A restart: the sources send their heads (v4) again. v4's staging/
	// is v2's, which stays quarantined.
	stop()
	stopped = true
	r2 := f.restarted()
	stop2 := runGitSources(t, r2, url, "staging", "prod")
	defer stop2()
	time.Sleep(2 * time.Second)
	if got := f.hostFile("s1", "/etc/a.conf"); got != "one" {
		t.Errorf("staging's a.conf = %q after a restart on a head (%s) declaring the rolled-back staging/", got, v4[:8])
	}
	if h, _ := r2.History("staging", 0); len(h) != stagingRuns {
		t.Errorf("staging's history went from %d to %d runs after the restart", stagingRuns, len(h))
	}
}
