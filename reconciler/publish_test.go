package reconciler

import (
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/targets"
)

// TestPublishedPlan: a report's plan carries no observed state; a file's
// diff is a summary unless the environment is opted into full diffs, and
// even then a secret or not world-readable file gets the summary only.
func TestPublishedPlan(t *testing.T) {
	const hostOnly = "HOST-ONLY-CONTENT"
	file := func(mode string, secret bool) config.Resource {
		return config.Resource{Kind: "file", Name: "/etc/a", Spec: &targets.FileSpec{Content: "new\n", Mode: mode, Secret: secret}}
	}
	observed := func(mode string) targets.State {
		return targets.State{Present: true, Fields: map[string]string{"type": "file", "mode": mode}, Content: []byte(hostOnly + "\n")}
	}
	for _, tc := range []struct {
		name     string
		full     bool
		res      config.Resource
		before   targets.State
		wantFull bool
	}{
		{"default", false, file("0644", false), observed("0644"), false},
		{"opted in", true, file("0644", false), observed("0644"), true},
		{"opted in, secret", true, file("0644", true), observed("0644"), false},
		{"opted in, private on the host", true, file("0644", false), observed("0600"), false},
		{"opted in, private as declared", true, file("0640", false), observed("0644"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := targets.Drivers()["file"]
			c := d.Diff(tc.res, tc.before)
			r := &Reconciler{opts: Options{Drivers: targets.Drivers()}, hashKey: []byte("k")}
			if tc.full {
				r.opts.FullDiffs = []string{"prod"}
			}
			hr := &hostRun{byID: map[string]config.Resource{tc.res.ID(): tc.res}}
			p := &status.Plan{Environment: "prod", Hosts: []status.HostPlan{{Host: "h", Changes: []targets.Change{c}}}}
			got := r.published(p, []*hostRun{hr}).Hosts[0].Changes[0]
			if got.Before.Present || got.Before.Content != nil || got.Before.Fields != nil {
				t.Errorf("the published change carries the observed state: %+v", got.Before)
			}
			if hasHost := strings.Contains(got.Diff, hostOnly); hasHost != tc.wantFull {
				t.Errorf("diff shows host content: %v, want %v:\n%s", hasHost, tc.wantFull, got.Diff)
			}
			secret := tc.res.IsSecret()
			if !tc.wantFull && !secret && !strings.Contains(got.Diff, "content: 18 bytes, 1 lines, hmac ") {
				t.Errorf("summary = %q", got.Diff)
			}
			// A secret's size would tell its length: only the hashes.
			if secret && (!strings.HasPrefix(got.Diff, "secret changed (content hidden)\ncontent: hmac ") || strings.Contains(got.Diff, "bytes")) {
				t.Errorf("secret summary = %q", got.Diff)
			}
		})
	}
}
