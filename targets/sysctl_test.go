package targets_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// TestSysctlOnHost converges net.ipv4.ip_forward inside a kind-1 host's own
// network namespace, heals a change made behind its back, and restores,
// through the agent (the one way the kind is applied on an SSH host).
func TestSysctlOnHost(t *testing.T) { throughAgent(t, testSysctlOnHost) }

func testSysctlOnHost(t *testing.T, reach reach) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("sysctl")
	tr := reach(t, lab, h)
	d := &targets.SysctlDriver{}
	h.MustExec(t, "echo 0 > /proc/sys/net/ipv4/ip_forward")
	r := config.Resource{Kind: "sysctl", Name: "net.ipv4.ip_forward", Spec: &targets.SysctlSpec{Value: "1"}}

	before := srvHostObserve(t, tr, d, r)
	if !before.Present || before.Fields["value"] != "0" {
		t.Fatalf("observed %+v, want value 0", before)
	}
	c := srvHostConverge(t, tr, d, r, targets.Update)
	if c.Diff != "value: 0 -> 1\npersisted: (none) -> 1" {
		t.Errorf("diff = %q", c.Diff)
	}
	if got := strings.TrimSpace(h.MustExec(t, "cat /proc/sys/net/ipv4/ip_forward")); got != "1" {
		t.Fatalf("ip_forward inside the host = %q, want 1", got)
	}
	conf := "/etc/sysctl.d/99-driftless-net.ipv4.ip_forward.conf"
	if got := h.MustExec(t, "grep -v '^#' "+conf); got != "net.ipv4.ip_forward = 1\n" {
		t.Fatalf("%s = %q", conf, got)
	}
	srvHostConverge(t, tr, d, r, targets.NoChange)

	h.MustExec(t, "sysctl -q -w net.ipv4.ip_forward=0")
	c = srvHostConverge(t, tr, d, r, targets.Update)
	if c.Diff != "value: 0 -> 1" {
		t.Errorf("live drift diff = %q", c.Diff)
	}
	h.MustExec(t, "rm "+conf)
	c = srvHostConverge(t, tr, d, r, targets.Update)
	if c.Diff != "persisted: (none) -> 1" {
		t.Errorf("persistence drift diff = %q", c.Diff)
	}

	srvRestore(t, tr, d, r, before, func(a, b targets.State) bool { return reflect.DeepEqual(a, b) })
	if out, err := h.Exec("ls " + conf); err == nil {
		t.Fatalf("restore left %s", out)
	}

	// Several numbers in one value compare whatever the whitespace.
	multi := config.Resource{Kind: "sysctl", Name: "net.ipv4.ip_local_port_range", Spec: &targets.SysctlSpec{Value: "20000    30000"}}
	srvHostConverge(t, tr, d, multi, targets.Update)
	srvHostConverge(t, tr, d, multi, targets.NoChange)

	// A parameter the kernel does not have is a clear error.
	bad := config.Resource{Kind: "sysctl", Name: "net.ipv4.no_such_knob", Spec: &targets.SysctlSpec{Value: "1"}}
	st := srvHostObserve(t, tr, d, bad)
	if err := d.Apply(t.Context(), tr, bad, st); err == nil || !strings.Contains(err.Error(), "no such kernel parameter") {
		t.Fatalf("apply of an unknown parameter: %v", err)
	}
}
