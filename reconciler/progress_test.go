package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
)

// TestProgressEvents: a rollout in two batches whose second fails its
// check sends, per host, observe, snapshot, apply, verify and done, placed
// in their batch, then the rollback of every touched host; a host with
// nothing to change is only observed.
func TestProgressEvents(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	f := newFixture(t, func(o *Options) {
		o.Progress = func(e status.Event) {
			mu.Lock()
			defer mu.Unlock()
			got[e.Host] = append(got[e.Host], fmt.Sprintf("%d/%d %s %s %d", e.Batch, e.Batches, e.Step, e.Status, e.Count))
		}
	})
	hosts := []string{"h1", "h2", "h3"}
	f.writeHostFile("h1", "/etc/app.conf", "old")
	f.writeHostFile("h2", "/etc/app.conf", "old")
	f.writeHostFile("h3", "/etc/app.conf", "new")
	extra := "rollout: {batch: 1}\nverify:\n  - name: ok\n    command: \"test {{ .Vars.ok }} = yes\"\n"
	vars := map[string]string{"h1": "ok: yes", "h2": "ok: no", "h3": "ok: yes"}
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, vars, fileRes("/etc/app.conf", "new"), extra)})
	runs, _ := f.r.ApplyRevision(context.Background(), rev)
	if len(runs) != 1 || runs[0].Result != status.ResultRolledBack {
		t.Fatalf("runs = %+v", runs)
	}
	want := map[string][]string{
		"h1": {"0/0 observe started 0", "0/0 observe ok 1",
			"1/2 snapshot started 1", "1/2 apply started 1", "1/2 apply ok 1", "1/2 verify started 1", "1/2 verify ok 1", "1/2 done ok 1",
			"0/0 rollback started 1", "0/0 rollback ok 1"},
		"h2": {"0/0 observe started 0", "0/0 observe ok 1",
			"2/2 snapshot started 1", "2/2 apply started 1", "2/2 apply ok 1", "2/2 verify started 1", "2/2 verify failed 1", "2/2 done failed 1",
			"0/0 rollback started 1", "0/0 rollback ok 1"},
		"h3": {"0/0 observe started 0", "0/0 observe ok 0"},
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

// TestAPIProgress: GET .../progress answers the events after a number,
// 400 for a number that is not one, 404 for an unknown environment.
func TestAPIProgress(t *testing.T) {
	log := status.NewProgressLog(0)
	f := newFixture(t, func(o *Options) { o.Progress = log.Add })
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/app.conf", "one"), "")})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Progress: log}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	w := &apiWorld{f: f, srv: srv}

	code, _, body := w.call(t, http.MethodGet, "/api/v1/environments/prod/progress", "", "")
	all := decode[api.ProgressAnswer](t, body)
	if code != http.StatusOK || len(all.Events) != 6 || all.Next != all.Events[5].Seq || all.Events[0].Step != status.StepObserve || all.Events[5].Step != status.StepDone {
		t.Fatalf("progress: %d %s", code, body)
	}
	code, _, body = w.call(t, http.MethodGet, fmt.Sprintf("/api/v1/environments/prod/progress?after=%d", all.Events[3].Seq), "", "")
	if got := decode[api.ProgressAnswer](t, body); code != http.StatusOK || len(got.Events) != 2 || got.Events[0] != all.Events[4] {
		t.Errorf("progress after %d: %d %s", all.Events[3].Seq, code, body)
	}
	for path, want := range map[string]int{
		"/api/v1/environments/prod/progress?after=-1": http.StatusBadRequest,
		"/api/v1/environments/prod/progress?after=x":  http.StatusBadRequest,
		"/api/v1/environments/nope/progress":          http.StatusNotFound,
	} {
		if code, _, body := w.call(t, http.MethodGet, path, "", ""); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}
}
