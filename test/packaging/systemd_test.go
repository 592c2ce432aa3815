package packaging

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// unitTestConfig is the configuration the unit runs in the container: a
// Git source, fetched over HTTP through the lab's bridge.
const unitTestConfig = `listen: 0.0.0.0:8080
drift_interval: 2s
sources:
  - name: fleet
    git: {url: "%s", branch: main, interval: 2s}
`

// unitTestEnv is the declared environment: one local host whose only
// resource lies in the state folder, the one path the unit's
// ProtectSystem=strict leaves writable.
const unitTestEnv = `environment: self
hosts:
  - name: self
    transport: local
    resources:
      - directory: /var/lib/driftless/www
        mode: "0755"
      - file: /var/lib/driftless/www/index.html
        content: "served by driftless\n"
        mode: "0644"
        requires: [directory:/var/lib/driftless/www]
`

// testUnitRunsUnderSystemd installs the shipped unit file, unchanged, with
// a freshly built binary in a container booting real systemd, and checks
// that systemd starts it (Type=notify: start returns once the daemon
// said READY=1), that under the unit's hardening it applies a revision
// from a real Git server and serves HTTP, that it is still running past its watchdog interval,
// and that `systemctl stop` ends it cleanly.
func testUnitRunsUnderSystemd(t *testing.T, bin string) {
	if os.Geteuid() != 0 {
		need.Missing(t, "needs root to boot a systemd container (test/hosts); run as root to check the unit under systemd")
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	git := gitserver.New(t)
	git.CreateRepo("fleet")
	work := git.Clone(t, "fleet")
	commit := work.Commit(t, map[string]string{"environments/self.yaml": unitTestEnv}, "declare self")
	work.Push(t)

	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("unit")
	gitAddr := forward(t, lab.BridgeIP, strings.TrimPrefix(git.URL(), "http://"))

	put := func(path string, b []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(h.Root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	binBytes, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	put("usr/local/bin/driftless", binBytes, 0o755)
	put("etc/systemd/system/driftless.service", unit, 0o644)
	put("etc/driftless/driftless.yaml", []byte(fmt.Sprintf(unitTestConfig, "http://"+gitAddr+"/fleet.git")), 0o644)
	// A short watchdog, so that the test waits past it in seconds; the
	// shipped value is checked by TestUnitSettings.
	put("etc/systemd/system/driftless.service.d/watchdog.conf", []byte("[Service]\nWatchdogSec=6s\n"), 0o644)

	h.MustExec(t, "useradd --system --home-dir /var/lib/driftless --shell /usr/sbin/nologin driftless")
	h.MustExec(t, "systemctl daemon-reload")
	if out, err := h.Exec("systemctl start driftless"); err != nil {
		journal, _ := h.Exec("journalctl -u driftless --no-pager | tail -n 40")
		t.Fatalf("systemctl start driftless: %v\n%s\n%s", err, out, journal)
	}
	t.Cleanup(func() {
		if t.Failed() {
			journal, _ := h.Exec("journalctl -u driftless --no-pager | tail -n 60")
			t.Logf("journal of driftless:\n%s", journal)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	index := filepath.Join(h.Root, "var/lib/driftless/www/index.html")
	waitFor(ctx, t, "the daemon to apply its revision inside the unit's sandbox", func() bool {
		b, err := os.ReadFile(index)
		return err == nil && string(b) == "served by driftless\n"
	})
	d := &daemon{addr: net.JoinHostPort(h.Address, "8080"), http: testHTTPClient()}
	if body, err := d.get(ctx, "/healthz"); err != nil || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz through the host's address: %q, %v", body, err)
	}
	if body, err := d.get(ctx, "/metrics"); err != nil || !strings.Contains(body, `driftless_reconcile_total{environment="self",result="success"} 1`) ||
		!strings.Contains(body, `driftless_source_up{source="fleet"} 1`) {
		t.Errorf("/metrics has no successful reconcile of the environment from an up source: %v\n%s", err, lastLines(body, 20))
	}
	var status struct {
		Applied string `json:"applied"`
		State   string `json:"state"`
	}
	body, err := d.get(ctx, "/api/v1/environments/self")
	if err == nil {
		err = json.Unmarshal([]byte(body), &status)
	}
	if err != nil || status.Applied != commit || status.State != "synced" {
		t.Errorf("the environment is %+v (%v), want commit %s applied and synced\n%s", status, err, commit, body)
	}

	// The daemon pings the watchdog at half of WatchdogSec; past twice the
	// interval, a daemon that did not would have been killed and restarted.
	wd := strings.TrimSpace(h.MustExec(t, "systemctl show -p WatchdogUSec --value driftless"))
	watchdog, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(wd, "min", "m"), " ", ""))
	if err != nil || watchdog != 6*time.Second {
		t.Fatalf("the service's watchdog is %q (%v), want the drop-in's 6s", wd, err)
	}
	pid := strings.TrimSpace(h.MustExec(t, "systemctl show -p MainPID --value driftless"))
	waitUntil := time.Now().Add(2*watchdog + time.Second)
	for time.Now().Before(waitUntil) {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting past the watchdog interval")
		case <-time.After(time.Second):
		}
	}
	state := h.MustExec(t, "systemctl show -p ActiveState -p SubState -p NRestarts -p MainPID driftless")
	want := fmt.Sprintf("ActiveState=active\nSubState=running\nNRestarts=0\nMainPID=%s\n", pid)
	if !sameLines(state, want) {
		t.Errorf("past the watchdog interval (%s) the service is\n%s\nwant\n%s", watchdog, state, want)
	}

	if out, err := h.Exec("systemctl stop driftless && systemctl show -p Result -p ExecMainStatus driftless"); err != nil || !sameLines(out, "Result=success\nExecMainStatus=0\n") {
		t.Errorf("systemctl stop: %v\n%s", err, out)
	}
}

// sameLines compares key=value outputs whatever their order.
func sameLines(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) {
		return false
	}
	seen := map[string]int{}
	for _, s := range g {
		seen[s]++
	}
	for _, s := range w {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}
