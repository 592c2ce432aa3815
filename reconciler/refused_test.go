package reconciler

import (
	"context"
	"strings"
	"testing"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestRefusedHeadIsVisible sends a revision, then a head its source refused
// (twice, as after a restart of the source): the environment says so in
// its status and reports it once; the next accepted head clears it.
func TestRefusedHeadIsVisible(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, revs) }()
	defer func() {
		cancel()
		<-done
	}()
	good := f.revision(map[string]string{"environments/app.yaml": envYAML("app", []string{"a1"}, nil, etc+fileRes("/etc/app.conf", "one"), "")})
	revs <- good
	eventually(t, "app applied", func() bool { return f.applied("app") == good.Commit })

	bad := sources.Revision{Source: good.Source, Commit: strings.Repeat("b", 40), Ref: good.Ref, Refused: "commit is not signed"}
	revs <- bad
	revs <- bad
	eventually(t, "the refusal shown", func() bool {
		st, _ := f.r.Environment("app")
		return strings.Contains(st.Refused, "head bbbbbbbbbbbb of source test refused: commit is not signed")
	})
	_ = f.r.Close()
	if got := f.rep.reportsOf(status.StatusFailure); len(got) != 1 || !strings.Contains(got[0], "refused") || !strings.Contains(got[0], good.Short()+" stays applied") {
		t.Fatalf("failure notices = %q; want one about the refusal", got)
	}
	if st, _ := f.r.Environment("app"); st.State != status.StateSynced || st.Applied != good.Commit {
		t.Fatalf("status after a refusal = %+v; want the applied revision kept", st)
	}

	next := f.revision(map[string]string{"environments/app.yaml": envYAML("app", []string{"a1"}, nil, etc+fileRes("/etc/app.conf", "two"), "")})
	revs <- next
	eventually(t, "the next head applied", func() bool { return f.applied("app") == next.Commit })
	if st, _ := f.r.Environment("app"); st.Refused != "" {
		t.Fatalf("refusal still shown after an accepted head: %q", st.Refused)
	}
}
