package reconciler

import (
	"context"
	"reflect"
	"sync"
	"testing"
)

// TestOnlyChangedHostsAreTouched: a host already in the declared state is
// in no batch: it is neither applied to nor verified, and the canary is
// the first host that has something to change.
func TestOnlyChangedHostsAreTouched(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var verified []string
	f.ver.gate = func(_, host string) {
		mu.Lock()
		defer mu.Unlock()
		verified = append(verified, host)
	}
	f.writeHostFile("h1", "/etc/app.conf", "old")
	f.writeHostFile("h2", "/etc/app.conf", "new")
	f.writeHostFile("h3", "/etc/app.conf", "old")
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2", "h3"}, nil,
		etc+fileRes("/etc/app.conf", "new"), "rollout: {canary: 1, batch: 1}\nverify:\n  - name: ok\n    command: \"true\"\n")})
	runs, err := f.r.ApplyRevision(context.Background(), rev)
	if err != nil || len(runs) != 1 || runs[0].Result != ResultSuccess || runs[0].Changes != 2 || len(runs[0].FailedHosts) != 0 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(verified, []string{"h1", "h3"}) {
		t.Errorf("verified hosts, in order: %v; want h1 (the canary) then h3, never the unchanged h2", verified)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if got := f.hostFile(h, "/etc/app.conf"); got != "new" {
			t.Errorf("%s: %q", h, got)
		}
	}
}
