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

// TestPullMode runs `driftless agent --pull` as a process (not under a
// test host's systemd: its network namespace cannot reach the Git server
// on loopback) with its managed paths under a sandbox folder. It follows a
// real Git server by polling: a pushed commit converges on edge-1 alone,
// drift is corrected, a commit failing its verification is rolled back,
// and the central daemon lists the host with its applied commit.
func TestPullMode(t *testing.T) {
	bin, _ := buildBinaries(t, false)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	v1 := work.Commit(t, map[string]string{"environments/edge.yaml": pullEnv("v1\n", "")}, "edge v1")
	work.Push(t)

	// The central daemon: no source of its own, a token with the report scope.
	token := "pull-report-token"
	sum := sha256.Sum256([]byte(token))
	cdir := t.TempDir()
	central := startDaemon(t, bin, writeFile(t, cdir, "driftless.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
api:
  tokens:
    - {name: edge, sha256: %s, scopes: [report]}
`, filepath.Join(cdir, "state"), hex.EncodeToString(sum[:])), 0o644))

	dir := t.TempDir()
	sandbox := filepath.Join(dir, "root")
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	tokenFile := writeFile(t, dir, "report.token", token+"\n", 0o600)
	cfg := writeFile(t, dir, "agent.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
drift_interval: 1s
sources:
  - name: infra
    git: {url: %s, branch: main, interval: 1s}
pull:
  host: edge-1
  report: {url: %s, token: {file: %s}, interval: 1s}
`, filepath.Join(dir, "state"), repoURL, central.URL, tokenFile), 0o644)
	pull := startProcess(t, bin, "agent", "--pull", "--config", cfg, "--sandbox-root", sandbox, "--log-level", "debug")
	conf := filepath.Join(sandbox, "etc/edge/app.conf")

	waitApplied(t, pull, "edge", v1)
	requireRun(t, pull, "edge", v1, "success")
	requireContent(t, conf, "v1\n")
	if _, err := os.Stat(filepath.Join(sandbox, "etc/edge/other.conf")); !os.IsNotExist(err) {
		t.Errorf("the other host's file was written on edge-1: %v", err)
	}

	t.Run("drift corrected", func(t *testing.T) {
		if err := os.WriteFile(conf, []byte("edited by hand\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, 100*time.Millisecond, "the drift to be corrected", func() error {
			return contentIs(conf, "v1\n")
		})
	})

	t.Run("failing commit rolled back", func(t *testing.T) {
		v2 := work.Commit(t, map[string]string{"environments/edge.yaml": pullEnv("v2\n", "exit 1")}, "edge v2 (fails verification)")
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
		waitFor(t, 30*time.Second, 100*time.Millisecond, "edge-1 in the central daemon's API", func() error {
			var hosts []struct {
				Host         string `json:"host"`
				Environments []struct {
					Name, Applied, State string
				} `json:"environments"`
			}
			if err := central.getJSON("/api/v1/pulled", &hosts); err != nil {
				return err
			}
			if len(hosts) != 1 || hosts[0].Host != "edge-1" || len(hosts[0].Environments) != 1 ||
				hosts[0].Environments[0].Name != "edge" || hosts[0].Environments[0].Applied != v1 {
				return fmt.Errorf("pulled hosts: %+v", hosts)
			}
			return nil
		})
		code, page, err := httpGet(context.Background(), central.URL+"/")
		if err != nil || code != http.StatusOK {
			t.Fatalf("the status page: %d %v", code, err)
		}
		if s := string(page); !strings.Contains(s, "Pull-mode hosts") || !strings.Contains(s, "edge-1") || !strings.Contains(s, v1) {
			t.Errorf("the status page does not show edge-1 at %s:\n%s", v1, s)
		}
	})
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
