package targets_test

import (
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

const unitV1 = `[Unit]
Description=driftless test service

[Service]
ExecStart=/bin/sh -c 'trap "" HUP; while :; do sleep 1; done'
ExecReload=/bin/kill -HUP $MAINPID

[Install]
WantedBy=multi-user.target
`

func mainPID(t *testing.T, h *hosts.Host, unit string) string {
	t.Helper()
	pid := strings.TrimSpace(h.MustExec(t, "systemctl show -p MainPID --value "+unit))
	if pid == "" || pid == "0" {
		t.Fatalf("%s has no main process", unit)
	}
	return pid
}

// TestServiceOnHost manages a unit on a kind-2 host with real systemd: it
// is written, enabled and started; stopped and disabled behind the
// driver's back it is healed; a changed unit file is reloaded and the
// service restarted; a refresh restarts (or reloads) it; restores put back
// the old unit, and finally nothing. Through the agent (systemd's D-Bus
// API).
func TestServiceOnHost(t *testing.T) { throughAgent(t, testServiceOnHost) }

func testServiceOnHost(t *testing.T, reach reach) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("svc")
	tr := reach(t, lab, h)
	d := &targets.ServiceDriver{}
	yes := true
	r := config.Resource{Kind: "service", Name: "dltest", Spec: &targets.ServiceSpec{Unit: unitV1, State: targets.ServiceRunning, Enabled: &yes}}

	before := srvHostObserve(t, tr, d, r)
	if before.Present {
		t.Fatalf("fresh host already has dltest: %+v", before)
	}
	c := srvHostConverge(t, tr, d, r, targets.Create)
	if !strings.Contains(c.Diff, "+ExecStart=") || !strings.Contains(c.Diff, "enabled: (none) -> true") || !strings.Contains(c.Diff, "-> running") {
		t.Errorf("create diff:\n%s", c.Diff)
	}
	if got := h.MustExec(t, "systemctl is-active dltest; systemctl is-enabled dltest"); got != "active\nenabled\n" {
		t.Fatalf("after apply: %q", got)
	}
	srvHostConverge(t, tr, d, r, targets.NoChange)

	h.MustExec(t, "systemctl disable -q --now dltest")
	c = srvHostConverge(t, tr, d, r, targets.Update)
	if c.Diff != "enabled: disabled -> true\nstate: inactive -> running" {
		t.Errorf("drift diff:\n%s", c.Diff)
	}

	// A changed unit file: daemon-reload, then a restart with the new unit.
	snap := srvHostObserve(t, tr, d, r)
	pid := mainPID(t, h, "dltest")
	v2 := *r.Spec.(*targets.ServiceSpec)
	v2.Unit = strings.Replace(unitV1, "[Service]\n", "[Service]\nEnvironment=DRIFTLESS_V=2\n", 1)
	r2 := config.Resource{Kind: "service", Name: "dltest", Spec: &v2}
	c = srvHostConverge(t, tr, d, r2, targets.Update)
	if !strings.Contains(c.Diff, "+Environment=DRIFTLESS_V=2") || !strings.Contains(c.Diff, "restart") {
		t.Errorf("unit change diff:\n%s", c.Diff)
	}
	if got := h.MustExec(t, "systemctl show -p Environment -p NeedDaemonReload dltest"); !strings.Contains(got, "Environment=DRIFTLESS_V=2") || !strings.Contains(got, "NeedDaemonReload=no") {
		t.Fatalf("unit not reloaded: %q", got)
	}
	if p := mainPID(t, h, "dltest"); p == pid {
		t.Fatalf("service not restarted after its unit changed (MainPID %s)", p)
	}

	// Refresh restarts: a new main process. With on_notify: reload the process stays.
	pid = mainPID(t, h, "dltest")
	if err := d.Refresh(t.Context(), tr, r2); err != nil {
		t.Fatal(err)
	}
	if p := mainPID(t, h, "dltest"); p == pid {
		t.Fatalf("refresh did not restart (MainPID %s)", p)
	}
	pid = mainPID(t, h, "dltest")
	reloads := func() string {
		return strings.TrimSpace(h.MustExec(t, "journalctl -q --no-pager -u dltest | grep -c 'Reloaded' || true"))
	}
	reloadsBefore := reloads()
	reload := v2
	reload.OnNotify = "reload"
	if err := d.Refresh(t.Context(), tr, config.Resource{Kind: "service", Name: "dltest", Spec: &reload}); err != nil {
		t.Fatal(err)
	}
	if p := mainPID(t, h, "dltest"); p != pid {
		t.Fatalf("reload replaced the main process (%s -> %s)", pid, p)
	}
	if after := reloads(); after == reloadsBefore {
		t.Fatalf("refresh with on_notify reload did not reload the unit (systemd logged %s reloads before and after)", after)
	}

	// A restore that only re-enables the unit leaves its process alone.
	snapEnabled := srvHostObserve(t, tr, d, r2)
	pid = mainPID(t, h, "dltest")
	off := false
	disabled := v2
	disabled.Enabled = &off
	srvHostConverge(t, tr, d, config.Resource{Kind: "service", Name: "dltest", Spec: &disabled}, targets.Update)
	srvRestore(t, tr, d, r2, snapEnabled, sameState)
	if p := mainPID(t, h, "dltest"); p != pid {
		t.Fatalf("restoring only the enabled state restarted the service (%s -> %s)", pid, p)
	}

	// Restore the unit before the change, then the host before everything.
	srvRestore(t, tr, d, r2, snap, sameState)
	if got := h.MustExec(t, "systemctl show -p Environment dltest"); strings.Contains(got, "DRIFTLESS_V") {
		t.Fatalf("restored unit still has the new environment: %q", got)
	}
	srvRestore(t, tr, d, r, before, sameState)
	if got := h.MustExec(t, "ls /etc/systemd/system/multi-user.target.wants/; ls /etc/systemd/system"); strings.Contains(got, "dltest") {
		t.Fatalf("restore left the unit behind:\n%s", got)
	}

	// A stopped service that is notified stays stopped.
	no := false
	stopped := config.Resource{Kind: "service", Name: "dltest", Spec: &targets.ServiceSpec{Unit: unitV1, State: targets.ServiceStopped, Enabled: &no}}
	srvHostConverge(t, tr, d, stopped, targets.Create)
	if err := d.Refresh(t.Context(), tr, stopped); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(h.MustExec(t, "systemctl is-active dltest || true")); got != "inactive" {
		t.Fatalf("refresh started a stopped service: %s", got)
	}
}

// TestServiceNeedsSystemd reports a clear error on a host without
// systemd, through the agent.
func TestServiceNeedsSystemd(t *testing.T) { throughAgent(t, testServiceNeedsSystemd) }

func testServiceNeedsSystemd(t *testing.T, reach reach) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("nosystemd")
	tr := reach(t, lab, h)
	d := &targets.ServiceDriver{}
	r := config.Resource{Kind: "service", Name: "x", Spec: &targets.ServiceSpec{State: targets.ServiceRunning}}
	_, err := targets.Observe(t.Context(), tr, map[string]targets.Driver{"service": d}, []config.Resource{r})
	if err == nil || !strings.Contains(err.Error(), "systemd is not running") {
		t.Fatalf("observe on a host without systemd: %v", err)
	}
	if err := d.Apply(t.Context(), tr, r, targets.State{}); err == nil {
		t.Fatal("apply on a host without systemd succeeded")
	}
}
