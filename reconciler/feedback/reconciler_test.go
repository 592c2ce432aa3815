package feedback

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// localDialer reaches every host of the test through the local transport,
// rooted in the host's sandbox folder.
type localDialer struct{}

func (localDialer) Transport(_ context.Context, h *config.Host) (targets.Transport, error) {
	return targets.NewLocal(h.Root), nil
}

// TestReconcilerReportsToGitHub runs the real reconciler with the real file
// driver on a local sandbox host, and checks what the GitHub stand-in
// receives: a pull request's preview becomes a plan comment with the file's
// diff (the environment is opted into full diffs; the file is world-readable);
// applying the revision becomes pending then success commit statuses
// and one deployment with its statuses.
func TestReconcilerReportsToGitHub(t *testing.T) {
	f, g := newTestGitHub(t, "", true)
	dir := t.TempDir()
	sandbox := filepath.Join(dir, "hosts")
	store, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := reconciler.New(reconciler.Options{
		Store: store, Dialer: localDialer{}, Drivers: targets.Drivers(),
		Load:      reconciler.DefaultLoader(config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: sandbox}),
		Reporters: []status.Reporter{g}, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		URL: "http://driftless.test", ReportTimeout: 10 * time.Second, DriftInterval: time.Hour,
		FullDiffs: []string{"staging"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	env := "environment: staging\nhosts:\n  - name: web-1\n    transport: local\n    roles: [app]\n" +
		"roles:\n  app:\n    - file: /etc/app.conf\n      content: \"port=8080\\n\"\n      mode: \"0644\"\n"
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "environments", "staging.yaml"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sandbox, "web-1", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sandbox, "web-1", "etc", "app.conf"), []byte("port=80\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision, 2)
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx, revs) }()
	defer func() {
		cancel()
		<-done
	}()

	revs <- sources.Revision{Source: "infra", Commit: sha, Dir: repo, Preview: true, PullRequest: 9, Time: time.Now()}
	waitFor(t, "the plan comment", func() bool { return len(f.got("POST /repos/ops/infra/issues/9/comments")) == 1 })
	body, _ := f.got("POST /repos/ops/infra/issues/9/comments")[0].Body["body"].(string)
	for _, want := range []string{planMarker("staging"), "<code>web-1</code>", "file:/etc/app.conf", "-port=80", "+port=8080", "1 to update"} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q:\n%s", want, body)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(sandbox, "web-1", "etc", "app.conf")); string(got) != "port=80\n" {
		t.Fatalf("a preview changed the host: %q", got)
	}

	revs <- sources.Revision{Source: "infra", Commit: sha, Dir: repo, Time: time.Now()}
	waitFor(t, "the success status", func() bool {
		st := f.got("POST /repos/ops/infra/statuses/" + sha)
		return len(st) > 0 && st[len(st)-1].Body["state"] == "success"
	})
	var states []string
	for _, r := range f.got("POST /repos/ops/infra/statuses/" + sha) {
		states = append(states, r.Body["state"].(string))
		if r.Body["target_url"] != "http://driftless.test/environments/staging" || r.Body["context"] != "driftless/staging" {
			t.Errorf("status %v", r.Body)
		}
	}
	if strings.Join(states, ",") != "pending,success" {
		t.Errorf("commit states %v, want pending,success", states)
	}
	waitFor(t, "the deployment's success", func() bool {
		ds := f.got("/deployments/")
		return len(ds) == 2 && ds[1].Body["state"] == "success"
	})
	if got, _ := os.ReadFile(filepath.Join(sandbox, "web-1", "etc", "app.conf")); string(got) != "port=8080\n" {
		t.Errorf("host file %q after the rollout", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
