package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// promotionSoak is prod's soak in the promotion test: a few seconds.
const promotionSoak = 4 * time.Second

// gateStatus is the part of an environment's status about its gates.
type gateStatus struct {
	State   string `json:"state"`
	Applied string `json:"applied"`
	Gate    *struct {
		Revision struct {
			Commit string `json:"commit"`
		} `json:"revision"`
		State  string    `json:"state"`
		Reason string    `json:"reason"`
		Until  time.Time `json:"until"`
	} `json:"gate"`
	GatePlan *struct {
		Commit string `json:"commit"`
	} `json:"gate_plan"`
}

func (d *daemon) gates(name string) (gateStatus, error) {
	var st gateStatus
	err := d.getJSON("/api/v1/environments/"+name, &st)
	return st, err
}

// waitGate waits until env holds commit at the gate state.
func waitGate(t testing.TB, d *daemon, env, commit, state string, timeout time.Duration) gateStatus {
	t.Helper()
	var last gateStatus
	waitFor(t, timeout, 50*time.Millisecond, fmt.Sprintf("%s to hold %.8s in %s", env, commit, state), func() error {
		st, err := d.gates(env)
		if err != nil {
			return err
		}
		last = st
		if st.Gate == nil || st.Gate.Revision.Commit != commit || st.Gate.State != state {
			return fmt.Errorf("state %q, gate %+v", st.State, st.Gate)
		}
		return nil
	})
	return last
}

// promotionEnvs declares staging and prod, one kind-1 host each, with
// /etc/app/app.conf holding content. Staging verifies on its host that the
// file says "good"; prod promotes from staging after a soak and needs an
// approval.
func promotionEnvs(stg, prod *hosts.Host, content string) map[string]string {
	env := func(name string, h *hosts.Host, extra string) string {
		return fmt.Sprintf(`environment: %s
%shosts:
  - name: %s
    address: %s
    resources:
      - directory: /etc/app
        mode: "0755"
      - file: /etc/app/app.conf
        content: %q
        mode: "0644"
        requires: [directory:/etc/app]
`, name, extra, h.Name, h.Address, content)
	}
	return map[string]string{
		"environments/staging.yaml": env("staging", stg, "verify:\n  - name: good\n    command: \"grep -q good /etc/app/app.conf\"\n"),
		"environments/prod.yaml": env("prod", prod, fmt.Sprintf("promote: {from: staging, soak: %s}\napproval: {required: true, approvers: [alice]}\n",
			promotionSoak)),
	}
}

// TestPromotionApprovalRestart is issue 16's acceptance on the built
// daemon, a real Git server and real SSH hosts: staging → prod with a soak
// and a required approval.
func TestPromotionApprovalRestart(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts SSH hosts; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	stg, prod := lab.Kind1("stg-1"), lab.Kind1("prod-1")
	bin, _ := buildBinaries(t, false)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("e2e-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	v1 := work.Commit(t, promotionEnvs(stg, prod, "good 1\n"), "v1")
	work.Push(t)

	const approveTok, syncTok = "approve-e2e-token", "sync-e2e-token"
	cfgFile := daemonConfig(t, lab, repoURL, secret, driftInterval)
	base, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(base) + fmt.Sprintf(`api:
  tokens:
    - {name: release-manager, sha256: %s, scopes: [approve]}
    - {name: ci, sha256: %s, scopes: [sync, rollback]}
`, sha(approveTok), sha(syncTok))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, cfgFile)
	hook.setTarget(d.URL)
	prodFile := func() string {
		b, err := os.ReadFile(filepath.Join(prod.Root, "etc/app/app.conf"))
		if err != nil {
			return "<absent>"
		}
		return string(b)
	}

	// A push lands on staging; prod soaks, then awaits approval.
	waitApplied(t, d, "staging", v1)
	st := waitGate(t, d, "prod", v1, "waiting", 5*time.Second)
	if !strings.HasPrefix(st.Gate.Reason, "soaking until") || st.State != "waiting" {
		t.Fatalf("prod while soaking: %+v", st)
	}
	requireMetricAtLeast(t, d, "driftless_promotion_pending", map[string]string{"environment": "prod"}, 1)
	st = waitGate(t, d, "prod", v1, "awaiting_approval", promotionSoak+30*time.Second)
	if st.GatePlan == nil || st.GatePlan.Commit != v1 {
		t.Fatalf("no plan shown for the revision awaiting approval: %+v", st.GatePlan)
	}
	if got := prodFile(); got != "<absent>" {
		t.Fatalf("prod changed before approval: %q", got)
	}

	// Approval by a token without the approve scope: 403.
	code, body := post(t, d, "/api/v1/environments/prod/approve", syncTok, `{"revision": "`+v1+`"}`)
	if code != http.StatusForbidden {
		t.Fatalf("approval with the sync token: %d %s", code, body)
	}
	// Approval with the right token, through the CLI.
	tokFile := writeFile(t, t.TempDir(), "token", approveTok+"\n", 0o600)
	out, err := exec.Command(bin, "approve", "-addr", d.URL, "-token-file", tokFile, "prod", v1[:10]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "approved by token:release-manager") {
		t.Fatalf("driftless approve: %v\n%s", err, out)
	}
	waitApplied(t, d, "prod", v1)
	if got := prodFile(); got != "good 1\n" {
		t.Fatalf("prod host has %q after the approval of v1", got)
	}

	// A second push during the soak restarts the wait; a rejected
	// revision is never applied.
	v2 := work.Commit(t, promotionEnvs(stg, prod, "good 2\n"), "v2")
	work.Push(t)
	waitApplied(t, d, "staging", v2)
	st2 := waitGate(t, d, "prod", v2, "waiting", 5*time.Second)
	v3 := work.Commit(t, promotionEnvs(stg, prod, "good 3\n"), "v3")
	work.Push(t)
	waitApplied(t, d, "staging", v3)
	st3 := waitGate(t, d, "prod", v3, "waiting", promotionSoak)
	if !st3.Gate.Until.After(st2.Gate.Until) {
		t.Errorf("the soak did not restart with v3: until %s, v2's %s", st3.Gate.Until, st2.Gate.Until)
	}
	waitGate(t, d, "prod", v3, "awaiting_approval", promotionSoak+30*time.Second)
	if code, body := post(t, d, "/api/v1/environments/prod/approve", approveTok, `{"revision": "`+v2+`"}`); code != http.StatusConflict {
		t.Fatalf("approving v2, which no longer waits: %d %s", code, body)
	}
	if code, body := post(t, d, "/api/v1/environments/prod/reject", approveTok, `{"revision": "`+v3+`"}`); code != http.StatusOK {
		t.Fatalf("reject v3: %d %s", code, body)
	}
	waitGate(t, d, "prod", v3, "rejected", 5*time.Second)
	requireRun(t, d, "prod", v3, "rejected")

	// A revision rolled back on staging never reaches prod.
	v4 := work.Commit(t, promotionEnvs(stg, prod, "bad 4\n"), "v4 fails staging's check")
	work.Push(t)
	waitFor(t, time.Minute, 100*time.Millisecond, "staging to roll v4 back", func() error {
		st, err := d.env("staging")
		if err != nil {
			return err
		}
		if st.State != "rolled_back" || st.Applied != v3 {
			return fmt.Errorf("state %q applied %.8s", st.State, st.Applied)
		}
		return nil
	})
	time.Sleep(promotionSoak + 2*driftInterval)
	if st, err := d.gates("prod"); err != nil || st.Gate != nil && st.Gate.Revision.Commit == v4 || st.Applied != v1 {
		t.Fatalf("prod after staging rolled v4 back: %+v %v", st, err)
	}
	if n := runsOf(t, d, "prod", v3) + runsOf(t, d, "prod", v4); n != 1 { // the rejection only
		t.Fatalf("prod has %d runs of v3 and v4, want only v3's rejection", n)
	}
	if got := prodFile(); got != "good 1\n" {
		t.Fatalf("prod host has %q, want v1's content", got)
	}

	// A kill while awaiting approval: after the restart the revision
	// still awaits, and its approval still works.
	v5 := work.Commit(t, promotionEnvs(stg, prod, "good 5\n"), "v5")
	work.Push(t)
	waitApplied(t, d, "staging", v5)
	waitGate(t, d, "prod", v5, "awaiting_approval", promotionSoak+30*time.Second)
	killed := time.Now()
	d.kill(t)
	d = startDaemon(t, bin, cfgFile)
	hook.setTarget(d.URL)
	// The API shows a state a disk sync before it is durable: a kill within
	// that sync finds the soak the record held just before, already over
	// (never a soak started again), and the first pass brings the approval
	// gate back.
	st, err = d.gates("prod")
	if err != nil || st.Gate == nil || st.Gate.Revision.Commit != v5 ||
		st.State != "awaiting_approval" && (st.State != "waiting" || st.Gate.Until.IsZero() || st.Gate.Until.After(killed)) {
		t.Fatalf("prod right after the restart: %+v %+v %v", st, st.Gate, err)
	}
	waitGate(t, d, "prod", v5, "awaiting_approval", 10*time.Second)
	time.Sleep(2 * driftInterval)
	if st, err := d.gates("prod"); err != nil || st.State != "awaiting_approval" || st.Applied != v1 {
		t.Fatalf("prod after the restart's first passes: %+v %v", st, err)
	}
	if code, body := post(t, d, "/api/v1/environments/prod/approve", approveTok, `{"revision": "`+v5[:12]+`"}`); code != http.StatusOK {
		t.Fatalf("approve v5 after the restart: %d %s", code, body)
	}
	waitApplied(t, d, "prod", v5)
	if got := prodFile(); got != "good 5\n" {
		t.Fatalf("prod host has %q after the approval of v5", got)
	}

	// A pull request comment from an allowed login approves the pull
	// request's head, and its merge goes to prod without another approval;
	// the same comment from another login is refused.
	comment := func(n int, login string) {
		t.Helper()
		githubComment(t, d.URL, secret, repoURL, n, login, "Looks good.\n/driftless approve prod")
	}
	work.Checkout(t, "pr-6")
	v6 := work.Commit(t, promotionEnvs(stg, prod, "good 6\n"), "v6 in a pull request")
	work.PushRef(t, "refs/pull/6/head")
	comment(6, "mallory")
	comment(6, "alice")
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--ff-only", "pr-6")
	work.Push(t)
	waitApplied(t, d, "staging", v6)
	waitApplied(t, d, "prod", v6)
	runs, err := d.history("prod")
	if err != nil {
		t.Fatal(err)
	}
	if r := runs[0]; r.Revision.Commit != v6 || r.Decision == nil || r.Decision.By != "github:alice" || r.Decision.PullRequest != 6 {
		t.Fatalf("prod's run of v6 does not name alice's approval: %+v", r)
	}
	work.Checkout(t, "pr-7")
	v7 := work.Commit(t, promotionEnvs(stg, prod, "good 7\n"), "v7 in a pull request")
	work.PushRef(t, "refs/pull/7/head")
	comment(7, "mallory")
	work.Checkout(t, "main")
	work.Git(t, "merge", "--quiet", "--ff-only", "pr-7")
	work.Push(t)
	waitApplied(t, d, "staging", v7)
	waitGate(t, d, "prod", v7, "awaiting_approval", promotionSoak+30*time.Second)
	if !strings.Contains(d.Log(), `"by":"mallory"`) || !strings.Contains(d.Log(), "comment approval refused") {
		t.Error("the refused comment approval is not logged")
	}
	hook.check(t)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// post sends an authenticated POST to the daemon's API.
func post(t testing.TB, d *daemon, path, token, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
