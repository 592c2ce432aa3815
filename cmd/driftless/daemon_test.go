package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/driftless/driftless/sources"
)

// sourceCheckout stands for a source that can check out old commits: it
// answers with a folder named after the commit.
type sourceCheckout struct{ calls int }

func (s *sourceCheckout) Checkout(_ context.Context, rev sources.Revision) (sources.Revision, error) {
	s.calls++
	rev.Dir = filepath.Join("restored", rev.Commit)
	return rev, nil
}

// TestRevisionsRouting: a revision's folder is used while it exists; a gone
// one is checked out again by the source that produced it; a source that
// cannot is an error naming it.
func TestRevisionsRouting(t *testing.T) {
	git := &sourceCheckout{}
	r := revisions{"infra": git}
	existing := t.TempDir()
	ctx := context.Background()

	got, err := r.Checkout(ctx, sources.Revision{Source: "infra", Commit: "a", Dir: existing})
	if err != nil || got.Dir != existing || git.calls != 0 {
		t.Fatalf("existing folder: %+v, %v, %d calls", got, err, git.calls)
	}
	got, err = r.Checkout(ctx, sources.Revision{Source: "infra", Commit: "b", Dir: filepath.Join(existing, "gone")})
	if err != nil || got.Dir != filepath.Join("restored", "b") || git.calls != 1 {
		t.Fatalf("gone folder: %+v, %v, %d calls", got, err, git.calls)
	}
	if _, err := r.Checkout(ctx, sources.Revision{Source: "folder", Commit: "c", Dir: filepath.Join(existing, "gone")}); err == nil {
		t.Fatal("a source without checkouts gave a revision back")
	}
}
