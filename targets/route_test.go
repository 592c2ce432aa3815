package targets_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

// TestRouteOverSSH converges routes on a real host: one created, one whose
// gateway changes, one removed, a default route; a second pass is a no-op;
// changes behind driftless's back are found and corrected; restoring puts
// back exactly the routing table there was (`ip -j route` compared whole).
func TestRouteOverSSH(t *testing.T) { testRoute(t, netHost(t, "route")) }

func testRoute(t *testing.T, n netTarget) {
	h := n.h
	h.MustExec(t, `ip addr add 10.99.1.1/24 dev dl0 &&
		ip route add 10.97.0.0/16 via 10.99.1.3 &&
		ip route add 10.96.0.0/16 dev dl0 metric 50`)
	routes := func() string { return h.MustExec(t, "ip -4 -j route; ip -6 -j route") }
	before := routes()
	ds := netDrivers(5 * time.Second)
	rs := []config.Resource{
		{Kind: "route", Name: "10.98.0.0/16", Spec: &targets.RouteSpec{To: "10.98.0.0/16", Via: "10.99.1.2"}},
		{Kind: "route", Name: "10.97.0.0/16", Spec: &targets.RouteSpec{To: "10.97.0.0/16", Via: "10.99.1.4", Dev: "dl0"}},
		{Kind: "route", Name: "10.96.0.0/16", Spec: &targets.RouteSpec{To: "10.96.0.0/16", State: config.Absent}},
		{Kind: "route", Name: "default", Spec: &targets.RouteSpec{To: "default", Via: "10.99.1.254"}},
	}
	none := targets.NoChange
	first := netPass(t, n, ds, rs, targets.Create, targets.Update, targets.Delete, targets.Create)
	if d := first[1].Diff; d != "via: 10.99.1.3 -> 10.99.1.4" {
		t.Fatalf("diff of a gateway change: %q", d)
	}
	netPass(t, n, ds, rs, none, none, none, none)
	got := h.MustExec(t, "ip -4 route show | grep -v 'proto kernel'")
	want := "default via 10.99.1.254 dev dl0 \n10.97.0.0/16 via 10.99.1.4 dev dl0 \n10.98.0.0/16 via 10.99.1.2 dev dl0 \n"
	if got != want {
		t.Fatalf("routes after the first pass:\n%s\nwant\n%s", got, want)
	}
	// Every change was confirmed through a new connection (the default
	// route does not take the control path: the lab subnet is on link), so
	// no revert stays armed.
	if left := armedJobs(t, h); left != "" {
		t.Fatalf("confirmed changes left reverts armed:\n%s", left)
	}

	// Behind driftless's back.
	h.MustExec(t, `ip route del 10.98.0.0/16 && ip route replace 10.97.0.0/16 via 10.99.1.9 &&
		ip route add 10.96.0.0/16 via 10.99.1.8 && ip route add 10.97.0.0/16 via 10.99.1.7 metric 9`)
	c := netPass(t, n, ds, rs, targets.Create, targets.Update, targets.Delete, none)
	if !strings.Contains(c[1].Diff, "routes to 10.97.0.0/16: 2 -> 1") {
		t.Fatalf("a second route to the same destination is not shown: %q", c[1].Diff)
	}
	netPass(t, n, ds, rs, none, none, none, none)
	restoreAll(t, n, ds, rs, first)
	if after := routes(); after != before {
		t.Fatalf("restore: routes\n%s\nwant\n%s", after, before)
	}
}

// TestRouteErrors checks that bad input is a clear error and a sandbox
// root is refused.
func TestRouteErrors(t *testing.T) {
	d := &targets.RouteDriver{}
	sandbox := targets.NewLocal(t.TempDir())
	for _, tc := range []struct {
		name string
		spec targets.RouteSpec
		want string
	}{
		{"bad destination", targets.RouteSpec{To: "10.0.0.0/33", Via: "10.0.0.1"}, "not a destination"},
		{"bad gateway", targets.RouteSpec{To: "10.1.0.0/16", Via: "gateway"}, "not an IP address"},
		{"bad device", targets.RouteSpec{To: "10.1.0.0/16", Dev: "a b"}, "not an interface name"},
		{"sandbox", targets.RouteSpec{To: "10.1.0.0/16", Via: "10.0.0.1"}, "need a real host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			r := config.Resource{Kind: "route", Name: spec.To, Spec: &spec}
			err := d.Apply(t.Context(), sandbox, r, targets.State{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			states, err := targets.Observe(t.Context(), sandbox, targets.Drivers(), []config.Resource{r})
			if err == nil || !strings.Contains(err.Error(), tc.want) || len(states) != 0 {
				t.Fatalf("observe gave %v, %v, want no state and %q", states, err, tc.want)
			}
		})
	}
}

// FuzzRouteParse feeds arbitrary `ip -j route` output to the parser: it
// fails cleanly or reads only routes to the resource's destination.
func FuzzRouteParse(f *testing.F) {
	f.Add([]byte(`[{"dst":"10.98.0.0/16","gateway":"10.99.1.2","dev":"dl0","flags":[]}]`))
	f.Add([]byte(`[{"dst":"10.98.0.0/16","dev":"dl0","metric":50},{"dst":"10.98.0.0/16","gateway":"10.99.1.3"}]`))
	f.Add([]byte(""))
	d := &targets.RouteDriver{}
	r := config.Resource{Kind: "route", Name: "10.98.0.0/16", Spec: &targets.RouteSpec{To: "10.98.0.0/16", Via: "10.99.1.2"}}
	f.Fuzz(func(t *testing.T, out []byte) {
		st, err := d.Parse(r, out)
		if err != nil {
			return
		}
		if st.Present != (st.Fields["count"] != "0") {
			t.Fatalf("present %v with %s routes", st.Present, st.Fields["count"])
		}
		_ = d.Diff(r, st)
	})
}

// TestRouteCutOffRevertsItself sends the replies to the control machine
// into a dead end: the change cuts the very connection that made it, the
// apply is reported as cut off, and the host puts its routes back by itself
// within the confirm timeout, after which SSH works again.
func TestRouteCutOffRevertsItself(t *testing.T) { testRouteCutOff(t, netHost(t, "routecut")) }

func testRouteCutOff(t *testing.T, n netTarget) {
	lab, h, tr, ctx := n.lab, n.h, n.tr, n.ctx
	h.MustExec(t, "ip addr add 10.99.1.1/24 dev dl0")
	before := h.MustExec(t, "ip -4 -j route; ip -6 -j route")
	const timeout = 4 * time.Second
	bad := config.Resource{Kind: "route", Name: lab.BridgeIP + "/32", Spec: &targets.RouteSpec{To: lab.BridgeIP + "/32", Via: "10.99.1.2"}}
	start := time.Now()
	err := netDrivers(timeout)["route"].Apply(ctx, tr, bad, targets.State{Fields: map[string]string{"count": "0"}})
	if !errors.Is(err, targets.ErrCutOff) {
		t.Fatalf("a route that cuts the host off: err = %v, want a cut-off", err)
	}
	t.Logf("reported after %s: %v", time.Since(start).Round(time.Millisecond), err)
	waitFor(t, timeout+5*time.Second, func() bool { return h.MustExec(t, "ip -4 -j route; ip -6 -j route") == before })
	t.Logf("host reverted itself %s after the apply began", time.Since(start).Round(time.Millisecond))
	reachableAgain(t, n, bad)
}
