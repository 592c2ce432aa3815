package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
)

// pullEnv declares the environment edge: the pull-mode host edge-1 and a
// host it must leave alone, each with a file holding content; verify, when
// set, is a command check (run on the host) added to the environment.
func pullEnv(content, verify string) string {
	env := fmt.Sprintf(`environment: edge
drift: enforce
hosts:
  - name: edge-1
    address: 192.0.2.1
    resources:
      - directory: /etc/edge
        mode: "0755"
      - file: /etc/edge/app.conf
        content: %q
        mode: "0644"
        requires: [directory:/etc/edge]
  - name: someone-else
    address: 192.0.2.2
    resources:
      - file: /etc/edge/other.conf
        content: "not for edge-1\n"
`, content)
	if verify != "" {
		env += fmt.Sprintf("verify:\n  - name: healthy\n    command: %q\n    timeout: 5s\n", verify)
	}
	return env
}

// agentUnit is the pull agent's unit file shipped in the repository.
const agentUnit = "../../systemd/driftless-agent.service"

// TestPullMode is issue 12's pull-mode acceptance: a kind-2 host runs
// `driftless agent --pull` under its own systemd, installed as
// docs/operations.md says (the built binary, the shipped unit file
// unchanged, a configuration in /etc/driftless/agent.yaml). The host
// reaches the real Git server and the central daemon on its lab's bridge
// address. A pushed commit converges on the host alone, drift made by hand
// on the host is corrected, a commit failing its verification is rolled
// back, and the central daemon lists the host with its revision and state.
func TestPullMode(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("edge-1")
	bin, _ := buildBinaries(t, false)
	git := gitserver.NewAt(t, lab.BridgeIP)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	v1 := work.Commit(t, map[string]string{"environments/edge.yaml": pullEnv("v1\n", "")}, "edge v1")
	work.Push(t)

	// The central daemon: no source of its own, a token with the report
	// scope, listening where the lab's hosts reach it.
	token := "pull-report-token"
	sum := sha256.Sum256([]byte(token))
	cdir := t.TempDir()
	central := startDaemon(t, bin, writeFile(t, cdir, "driftless.yaml", fmt.Sprintf(`listen: %s:0
state_dir: %s
api:
  tokens:
    - {name: edge, sha256: %s, scopes: [report]}
`, lab.BridgeIP, filepath.Join(cdir, "state"), hex.EncodeToString(sum[:])), 0o644))

	// The install, as an operator does it: pull.host is left out (the
	// host's name is edge-1), and so is state_dir (the unit's
	// StateDirectory).
	unit, err := os.ReadFile(agentUnit)
	if err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"usr/local/bin/driftless", binary, 0o755},
		{"etc/systemd/system/driftless-agent.service", unit, 0o644},
		{"etc/driftless/report.token", []byte(token + "\n"), 0o600},
		{"etc/driftless/agent.yaml", []byte(fmt.Sprintf(`listen: %s:8080
drift_interval: 1s
sources:
  - name: infra
    git: {url: %s, branch: main, interval: 1s}
pull:
  report: {url: %s, token: {file: /etc/driftless/report.token}, interval: 1s}
`, h.Address, repoURL, central.URL)), 0o644},
	} {
		p := filepath.Join(h.Root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			journal, _ := h.Exec("systemctl status --no-pager -n 0 driftless-agent; journalctl -u driftless-agent --no-pager | tail -n 80")
			t.Logf("the agent on %s:\n%s", h.Name, journal)
		}
	})
	if out, err := h.Exec("systemctl daemon-reload && systemctl enable --now driftless-agent"); err != nil {
		t.Fatalf("install the agent on %s: %v\n%s", h.Name, err, out)
	}
	pull := &daemon{URL: "http://" + h.Address + ":8080"}
	conf := filepath.Join(h.Root, "etc/edge/app.conf")

	if !t.Run("runs under the host's systemd", func(t *testing.T) {
		out := h.MustExec(t, "systemctl is-enabled driftless-agent; systemctl show -p ActiveState -p SubState -p Type -p User driftless-agent; "+
			"readlink /proc/$(systemctl show -p MainPID --value driftless-agent)/exe")
		if !sameLines(out, "enabled\nActiveState=active\nSubState=running\nType=notify\nUser=root\n/usr/local/bin/driftless\n") {
			t.Errorf("the unit on %s:\n%s", h.Name, out)
		}
		if journal := h.MustExec(t, "journalctl -u driftless-agent --no-pager -o cat"); !strings.Contains(journal, "driftless started") {
			t.Errorf("the unit's journal does not say it started:\n%s", journal)
		}
	}) {
		return
	}

	t.Run("converges to the pushed commit", func(t *testing.T) {
		waitApplied(t, pull, "edge", v1)
		requireRun(t, pull, "edge", v1, "success")
		requireContent(t, conf, "v1\n")
		if _, err := os.Stat(filepath.Join(h.Root, "etc/edge/other.conf")); !os.IsNotExist(err) {
			t.Errorf("the other host's file was written on edge-1: %v", err)
		}
		if _, err := os.Stat(filepath.Join(h.Root, "var/lib/driftless-agent/state.db")); err != nil {
			t.Errorf("the agent's state is not in the unit's StateDirectory: %v", err)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("drift corrected", func(t *testing.T) {
		h.MustExec(t, "echo edited by hand > /etc/edge/app.conf")
		waitFor(t, time.Minute, 100*time.Millisecond, "the drift to be corrected", func() error {
			return contentIs(conf, "v1\n")
		})
	})

	var v2 string
	t.Run("failing commit rolled back", func(t *testing.T) {
		v2 = work.Commit(t, map[string]string{"environments/edge.yaml": pullEnv("v2\n", "exit 1")}, "edge v2 (fails verification)")
		work.Push(t)
		waitFor(t, 2*time.Minute, 200*time.Millisecond, "v2 to be rolled back", func() error {
			st, err := pull.env("edge")
			if err != nil {
				return err
			}
			if !slices.Contains(st.Quarantined, v2) || st.State == "rolling_back" {
				return fmt.Errorf("state %q, quarantined %v, last result %q", st.State, st.Quarantined, st.LastResult)
			}
			return nil
		})
		requireRun(t, pull, "edge", v2, "rolled_back")
		requireContent(t, conf, "v1\n")
		st, err := pull.env("edge")
		if err != nil || st.LastGood != v1 || st.Applied != v1 {
			t.Errorf("after the rollback: applied %q, last good %q (%v), want v1 %s", st.Applied, st.LastGood, err, v1)
		}
	})

	t.Run("reported to the central daemon", func(t *testing.T) {
		own, err := pull.env("edge")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, 100*time.Millisecond, "edge-1 in the central daemon's API", func() error {
			var pulled []struct {
				Host         string `json:"host"`
				Environments []struct {
					Name, Applied, State string
					LastGood             string `json:"last_good"`
					LastResult           string `json:"last_result"`
				} `json:"environments"`
			}
			if err := central.getJSON("/api/v1/pulled", &pulled); err != nil {
				return err
			}
			if len(pulled) != 1 || pulled[0].Host != "edge-1" || len(pulled[0].Environments) != 1 {
				return fmt.Errorf("pulled hosts: %+v", pulled)
			}
			// The rollback of v2 is the last run: v1 applied, state and
			// result rolled_back, as the agent's own API says.
			if e := pulled[0].Environments[0]; e.Name != "edge" || e.Applied != v1 || e.LastGood != v1 ||
				e.State != "rolled_back" || e.LastResult != "rolled_back" || e.State != own.State || e.LastResult != own.LastResult {
				return fmt.Errorf("edge-1 reported %+v, the agent says %+v", e, own)
			}
			return nil
		})
		code, page, err := httpGet(context.Background(), central.URL+"/")
		if err != nil || code != http.StatusOK {
			t.Fatalf("the status page: %d %v", code, err)
		}
		row := `<td>edge-1</td><td>edge</td><td><code title="` + v1 + `">`
		if s := string(page); !strings.Contains(s, "Pull-mode hosts") || !strings.Contains(s, row) || !strings.Contains(s, `class="state-rolled_back">rolled_back`) {
			t.Errorf("the status page does not show edge-1 at %s, rolled back:\n%s", v1, s)
		}
	})

	t.Run("restarted by systemd after a crash", func(t *testing.T) {
		pid := strings.TrimSpace(h.MustExec(t, "systemctl show -p MainPID --value driftless-agent"))
		// Drift made while the agent is down is corrected once systemd
		// has restarted it (Restart=on-failure, RestartSec=5s).
		h.MustExec(t, "kill -KILL "+pid+" && echo edited while down > /etc/edge/app.conf")
		waitFor(t, time.Minute, 200*time.Millisecond, "systemd to restart the agent", func() error {
			out, err := h.Exec("systemctl show -p ActiveState -p NRestarts -p MainPID driftless-agent")
			if err != nil || !strings.Contains(out, "ActiveState=active\n") || !strings.Contains(out, "NRestarts=1\n") || strings.Contains(out, "MainPID="+pid+"\n") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		waitFor(t, time.Minute, 100*time.Millisecond, "the drift to be corrected after the restart", func() error {
			return contentIs(conf, "v1\n")
		})
		if st, err := pull.env("edge"); err != nil || st.Applied != v1 || !slices.Contains(st.Quarantined, v2) {
			t.Errorf("after the restart: applied %q, quarantined %v (%v), want v1 %s, v2 quarantined", st.Applied, st.Quarantined, err, v1)
		}
	})

	t.Run("started again at boot", func(t *testing.T) {
		before := time.Now()
		if err := h.Reboot(); err != nil {
			t.Fatal(err)
		}
		if out := h.MustExec(t, "systemctl show -p ActiveState -p SubState -p NRestarts driftless-agent"); !sameLines(out, "ActiveState=active\nSubState=running\nNRestarts=0\n") {
			t.Errorf("after the reboot the unit is\n%s", out)
		}
		waitFor(t, time.Minute, 100*time.Millisecond, "a report from the rebooted host", func() error {
			var pulled []struct {
				Host         string    `json:"host"`
				Received     time.Time `json:"received"`
				Environments []struct {
					Applied string `json:"applied"`
				} `json:"environments"`
			}
			if err := central.getJSON("/api/v1/pulled", &pulled); err != nil {
				return err
			}
			if len(pulled) != 1 || !pulled[0].Received.After(before) || len(pulled[0].Environments) != 1 || pulled[0].Environments[0].Applied != v1 {
				return fmt.Errorf("pulled hosts: %+v", pulled)
			}
			return nil
		})
		requireContent(t, conf, "v1\n")
	})

	t.Run("stops cleanly", func(t *testing.T) {
		out, err := h.Exec("systemctl stop driftless-agent && systemctl show -p Result -p ExecMainStatus -p NRestarts driftless-agent")
		if err != nil || !sameLines(out, "Result=success\nExecMainStatus=0\nNRestarts=0\n") {
			t.Errorf("systemctl stop: %v\n%s", err, out)
		}
	})
}

// sameLines compares whitespace-separated outputs whatever their order.
func sameLines(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func contentIs(path, want string) error {
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(got) != want {
		return fmt.Errorf("%s holds %q, want %q", path, got, want)
	}
	return nil
}

func requireContent(t testing.TB, path, want string) {
	t.Helper()
	if err := contentIs(path, want); err != nil {
		t.Error(err)
	}
}
