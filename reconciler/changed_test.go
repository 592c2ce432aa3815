package reconciler

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/reconciler/status"
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
	if err != nil || len(runs) != 1 || runs[0].Result != status.ResultSuccess || runs[0].Changes != 2 || len(runs[0].FailedHosts) != 0 {
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

// TestPreviewLeavesHostStatusAlone: planning a revision that is not rolled
// out (a pull request's preview, `driftless plan`) observes its hosts but
// does not make them the environment's: driftless_host_up and the
// environment's host list keep the hosts of the last rollout.
func TestPreviewLeavesHostStatusAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")})
	if _, err := f.r.ApplyRevision(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	// The pull request adds a host nobody answers for.
	env := "environment: prod\nhosts:\n  - name: far\n    address: 127.0.0.1\n    port: " + closedPort(t) +
		"\n    roles: [all]\n  - name: h1\n    transport: local\n    roles: [all]\nroles:\n  all:\n" + etc + fileRes("/etc/a.conf", "b")
	plans, err := f.r.PlanRevision(ctx, f.revision(map[string]string{"environments/prod.yaml": env}))
	if err != nil || len(plans) != 1 || len(plans[0].Hosts) != 2 || plans[0].Hosts[0].Err == "" {
		t.Fatalf("plans = %+v, %v; want the far host's plan to fail", plans, err)
	}
	if n := testutil.CollectAndCount(f.r.m.hostUp); n != 1 {
		t.Errorf("%d driftless_host_up series after a preview, want h1's only", n)
	}
	st, _ := f.r.Environment("prod")
	if len(st.Hosts) != 1 || st.Hosts[0] != (status.HostStatus{Name: "h1", Up: true}) {
		t.Errorf("hosts after a preview: %+v", st.Hosts)
	}
}

func TestParallelismBoundsABatch(t *testing.T) {
	var mu sync.Mutex
	inflight, most := 0, 0
	f := newFixture(t)
	f.ver.gate = func(string, string) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		// Hold the host a moment, so hosts allowed to overlap do.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			mu.Lock()
			full := inflight >= 2
			mu.Unlock()
			if full {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	hosts := []string{"h1", "h2", "h3", "h4", "h5", "h6"}
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, nil, etc+fileRes("/etc/a.conf", "a"),
		"rollout: {batch: 6, parallelism: 2}\nverify:\n  - command: \"true\"\n")})
	runs, err := f.r.ApplyRevision(context.Background(), rev)
	if err != nil || runs[0].Changes != 12 {
		t.Fatalf("runs = %+v %v", runs, err)
	}
	if most != 2 {
		t.Fatalf("at most %d hosts were worked on at once, want 2 (parallelism)", most)
	}
}

func TestRemovedHostLeavesHostUp(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, hosts := range [][]string{{"h1", "h2"}, {"h1"}} {
		rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, nil, etc, "")})
		if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.CollectAndCount(f.r.m.hostUp); n != 1 {
		t.Errorf("%d host_up series, want 1", n)
	}
	if st, _ := f.r.Environment("prod"); len(st.Hosts) != 1 || st.Hosts[0].Name != "h1" {
		t.Errorf("hosts = %+v", st.Hosts)
	}
}

// TestVerificationAfterTheWholeBatch: a batch is applied on all its hosts
// before any of them is verified, even one host at a time, so a check sees
// its batch as a whole; the next batch is applied only after that.
func TestVerificationAfterTheWholeBatch(t *testing.T) {
	f := newFixture(t)
	hosts := []string{"h1", "h2", "h3", "h4"}
	var mu sync.Mutex
	var seen []string
	f.ver.gate = func(_, host string) {
		n := 0
		for _, h := range hosts {
			if f.hostFile(h, "/etc/a.conf") == "new" {
				n++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s:%d", host, n))
	}
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, nil, etc+fileRes("/etc/a.conf", "new"),
		"rollout: {batch: 3, parallelism: 1}\nverify:\n  - command: \"true\"\n")})
	if runs, err := f.r.ApplyRevision(context.Background(), rev); err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("runs = %+v %v", runs, err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Each entry: the host verified and how many hosts held the new file then.
	if want := []string{"h1:3", "h2:3", "h3:3", "h4:4"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("verifications %v, want %v", seen, want)
	}
}
