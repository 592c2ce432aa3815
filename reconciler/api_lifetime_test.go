package reconciler

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestAPIOperationOutlivesClient: a client that goes away in the middle
// of a rollback does not cut the rollout short; it completes on every host.
func TestAPIOperationOutlivesClient(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	entered, release := holdFirstVerify(w.f, "")
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", w.srv.URL+"/api/v1/environments/prod/rollback", strings.NewReader(`{"to": "`+w.rev1.Commit+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	errc := make(chan error, 1)
	go func() {
		resp, err := w.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered // the rollout is verifying its first host
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	close(release)
	eventually(t, "the rollback completes", func() bool {
		st, _ := w.f.r.Environment("prod")
		return st.Applied == w.rev1.Commit && st.State == status.StateSynced
	})
	for _, h := range []string{"h1", "h2"} {
		if got := w.f.hostFile(h, appConf); got != "one" {
			t.Fatalf("%s: %q", h, got)
		}
	}
}

// TestAPIConcurrentSyncs: syncs sent at once all run, one after the
// other, and each answers the synced state.
func TestAPIConcurrentSyncs(t *testing.T) {
	w := newAPIWorld(t, tokenFile(t))
	before, _ := w.f.r.History("prod", 0)
	const n = 4
	codes := make(chan int, n)
	for range n {
		// Not w.call: a helper goroutine must not call t.Fatal.
		go func() {
			req, _ := http.NewRequest("POST", w.srv.URL+"/api/v1/environments/prod/sync", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := w.srv.Client().Do(req)
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range n {
		if code := <-codes; code != 200 {
			t.Errorf("concurrent sync: %d", code)
		}
	}
	after, _ := w.f.r.History("prod", 0)
	if len(after) != len(before)+n {
		t.Fatalf("%d runs recorded for %d syncs", len(after)-len(before), n)
	}
	for _, r := range after[:n] {
		if r.Trigger != status.TriggerSync || r.End.IsZero() {
			t.Fatalf("run %+v", r)
		}
	}
	// Runs were serialised: none started before the previous one ended.
	for i := 0; i+1 < n; i++ {
		if after[i].Start.Before(after[i+1].End) {
			t.Fatalf("runs %d and %d overlap", after[i+1].ID, after[i].ID)
		}
	}
}

// TestAPIOperationStopsWithDaemon: the daemon's context ending interrupts
// a manual rollback; the API answers why, and the next pass puts the
// hosts back on one whole revision.
func TestAPIOperationStopsWithDaemon(t *testing.T) {
	f := newFixture(t)
	w := &apiWorld{f: f}
	w.mk = func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil,
			etc+fileRes(appConf, content), "rollout: {batch: 1}\nverify:\n  - command: \"true\"\n")})
	}
	w.rev1, w.rev2 = w.mk("one"), w.mk("two")
	for _, rev := range []sources.Revision{w.rev1, w.rev2} {
		if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
			t.Fatal(err)
		}
	}
	daemon, stop := context.WithCancel(context.Background())
	defer stop()
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Token: tokenFile(t), Context: daemon}).Register(mux)
	w.srv = httptest.NewServer(mux)
	defer w.srv.Close()

	entered, release := holdFirstVerify(f, "")
	type answer struct {
		code int
		body []byte
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", w.srv.URL+"/api/v1/environments/prod/rollback", strings.NewReader(`{"to": "`+w.rev1.Commit+`"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			done <- answer{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, b}
	}()
	<-entered // h1 is on rev1 and verifying; h2 still on rev2
	stop()
	close(release)
	a := <-done
	if e := decode[api.ErrorAnswer](t, a.body); a.code != 500 || !strings.Contains(e.Error, "interrupted") {
		t.Fatalf("%d %s", a.code, a.body)
	}
	// The next pass first finishes the interrupted rollout's rollback.
	f.ver.gate = nil
	if err := f.r.Sync(context.Background(), "prod"); err != nil {
		t.Fatalf("sync after the interruption: %v", err)
	}
	h1, h2 := f.hostFile("h1", appConf), f.hostFile("h2", appConf)
	if h1 != h2 {
		t.Fatalf("hosts left on different revisions: h1 %q, h2 %q", h1, h2)
	}
}
