package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/test/need"
)

// warmingCheck passes at every third attempt: each verification of the
// host retries twice before it passes (a service that takes a moment to
// come up).
const warmingCheck = `  - name: warms up
    command: 'n=$(cat "$DRIFTLESS_ROOT/tries" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$DRIFTLESS_ROOT/tries"; test $((n % 3)) -eq 0'
    retries: 4
    interval: 50ms
`

// warmingRepo is a copy of the quickstart example with warmingCheck.
func warmingRepo(t *testing.T, dir string) {
	t.Helper()
	if err := os.CopyFS(dir, os.DirFS("../../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "environments", "quickstart.yaml")
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(envFile, append(b, warmingCheck...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inOrder checks that out holds every line of want, as whole lines, in
// that order (other lines may come between).
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, w := range want {
		for i < len(lines) && lines[i] != w {
			i++
		}
		if i == len(lines) {
			t.Errorf("no line %q (in this order) in:\n%s", w, out)
			return
		}
		i++
	}
}

// TestApplyProgress: a one-shot apply shows its progress on stderr, one
// plain line per event when stderr is no terminal (a retrying check
// with its attempt counts), a live table under a terminal, and nothing
// with --progress none; stdout keeps only the result.
func TestApplyProgress(t *testing.T) {
	bin := buildDriftless(t)
	repo := t.TempDir()
	warmingRepo(t, repo)

	code, out, stderr := runBinary(t, bin, "apply", repo, "--sandbox-root", t.TempDir())
	if code != 0 || !strings.HasPrefix(out, "quickstart: success, 7 changes") {
		t.Fatalf("apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	inOrder(t, stderr,
		"quickstart local: observe",
		"quickstart local: observed, 7 changes",
		"quickstart batch 1/1 local: snapshot 7 resources",
		"quickstart batch 1/1 local: apply 7 changes",
		"quickstart batch 1/1 local: applied 7 changes",
		"quickstart batch 1/1 local: verify 2 checks",
		`quickstart batch 1/1 local: check "release 1.4.2 is live on local" attempt 1/1 ok`,
		`quickstart batch 1/1 local: check "warms up" attempt 1/5 failed, retrying`,
		`quickstart batch 1/1 local: check "warms up" attempt 2/5 failed, retrying`,
		`quickstart batch 1/1 local: check "warms up" attempt 3/5 ok`,
		"quickstart batch 1/1 local: verify ok",
		"quickstart batch 1/1 local: done",
	)
	if strings.Contains(stderr, "\x1b[") {
		t.Errorf("plain progress has terminal escapes:\n%q", stderr)
	}

	code, out, stderr = runBinary(t, bin, "apply", repo, "--sandbox-root", t.TempDir(), "--progress", "none", "-o", "json")
	if code != 0 || stderr != "" || !strings.HasPrefix(out, "[") {
		t.Errorf("--progress none: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, _, stderr = runBinary(t, bin, "apply", repo, "--progress", "fancy")
	if code != 2 || !strings.Contains(stderr, "--progress must be auto, live, plain or none") {
		t.Errorf("--progress fancy: exit %d\n%s", code, stderr)
	}

	// Under a terminal (script(1) gives the command a pseudo-terminal),
	// the same apply draws one row for the host and rewrites it in place.
	script := need.Tools(t, "the live progress test", "script")
	cmd := exec.Command(script, "-qec", bin+" apply "+repo+" --sandbox-root "+t.TempDir(), os.DevNull)
	tty, err := cmd.Output()
	if err != nil {
		t.Fatalf("apply under a terminal: %v\n%s", err, tty)
	}
	screen := string(tty)
	for _, want := range []string{
		"\x1b[2Kquickstart local: observe\r\n",
		"\x1b[1A\x1b[2Kquickstart batch 1/1 local: check \"warms up\" attempt 2/5 failed, retrying\r\n",
		"\x1b[1A\x1b[2Kquickstart batch 1/1 local: done\r\n",
		"quickstart: success, 7 changes",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal shows no %q:\n%q", want, screen)
		}
	}
}

// TestProgressLines: every step and status reads as stable text.
func TestProgressLines(t *testing.T) {
	e := func(batch int, step status.Step, st string, count int) status.Event {
		return status.Event{Environment: "prod", Host: "web-1", Batch: batch, Batches: 2, Step: step, Status: st, Count: count}
	}
	check := e(2, status.StepVerify, status.StatusRetrying, 0)
	check.Check, check.Attempt, check.Attempts = "healthz", 2, 10
	last := check
	last.Status, last.Attempt = status.StatusFailed, 10
	for _, tc := range []struct {
		e    status.Event
		want string
	}{
		{e(0, status.StepObserve, status.StatusStarted, 0), "prod web-1: observe"},
		{e(0, status.StepObserve, status.StatusOK, 3), "prod web-1: observed, 3 changes"},
		{e(0, status.StepObserve, status.StatusFailed, 0), "prod web-1: observe failed"},
		{e(1, status.StepSnapshot, status.StatusStarted, 3), "prod batch 1/2 web-1: snapshot 3 resources"},
		{e(1, status.StepApply, status.StatusStarted, 3), "prod batch 1/2 web-1: apply 3 changes"},
		{e(1, status.StepApply, status.StatusOK, 3), "prod batch 1/2 web-1: applied 3 changes"},
		{e(1, status.StepApply, status.StatusFailed, 1), "prod batch 1/2 web-1: apply failed"},
		{e(2, status.StepVerify, status.StatusStarted, 2), "prod batch 2/2 web-1: verify 2 checks"},
		{e(1, status.StepApply, status.StatusOK, 1), "prod batch 1/2 web-1: applied 1 change"},
		{check, `prod batch 2/2 web-1: check "healthz" attempt 2/10 failed, retrying`},
		{last, `prod batch 2/2 web-1: check "healthz" attempt 10/10 failed`},
		{e(2, status.StepVerify, status.StatusFailed, 2), "prod batch 2/2 web-1: verify failed"},
		{e(2, status.StepDone, status.StatusFailed, 3), "prod batch 2/2 web-1: failed"},
		{e(0, status.StepRollback, status.StatusStarted, 3), "prod web-1: roll back 3 resources"},
		{e(0, status.StepRollback, status.StatusOK, 3), "prod web-1: rollback ok"},
	} {
		if got := progressLine(tc.e); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestSyncRollbackWait: against a live daemon, rollback --wait and sync
// --wait show the run's progress read from the daemon's API while they
// wait (a rollout back to the first revision, its check retrying; a
// drift correction), and print the state once the run ended.
func TestSyncRollbackWait(t *testing.T) {
	bin := buildDriftless(t)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("wait-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No drift pass of its own during the test: the sync makes the one
	// that corrects the hand edit.
	d := startDaemon(t, bin, "drift_interval: 1h\napi:\n  token: {file: "+token+"}\n")
	if err := os.RemoveAll(d.repo); err != nil {
		t.Fatal(err)
	}
	warmingRepo(t, d.repo)
	success := `driftless_reconcile_total{environment="quickstart",result="success"}`
	d.waitMetric(t, success, 1)
	envFile := filepath.Join(d.repo, "environments", "quickstart.yaml")
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(envFile, []byte(strings.Replace(string(b), "log_level: info", "log_level: debug", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitMetric(t, success, 2)

	client := []string{"--addr", "http://" + d.addr, "--token-file", token, "--progress", "plain"}
	code, out, stderr := runBinary(t, bin, append([]string{"rollback", "quickstart", "--wait"}, client...)...)
	if code != 0 || !strings.HasPrefix(out, "rollback quickstart: state synced") {
		t.Fatalf("rollback --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	inOrder(t, stderr,
		"quickstart local: observe",
		"quickstart local: observed, 1 change",
		"quickstart batch 1/1 local: snapshot 1 resource",
		"quickstart batch 1/1 local: apply 1 change",
		"quickstart batch 1/1 local: applied 1 change",
		"quickstart batch 1/1 local: verify 2 checks",
		`quickstart batch 1/1 local: check "release 1.4.2 is live on local" attempt 1/1 ok`,
		`quickstart batch 1/1 local: check "warms up" attempt 1/5 failed, retrying`,
		`quickstart batch 1/1 local: check "warms up" attempt 2/5 failed, retrying`,
		`quickstart batch 1/1 local: check "warms up" attempt 3/5 ok`,
		"quickstart batch 1/1 local: done",
	)
	// Only this run's events: none of the two rollouts before it.
	if n := strings.Count(stderr, "local: observe\n"); n != 1 {
		t.Errorf("%d observe lines, want the rollback's one:\n%s", n, stderr)
	}

	conf := filepath.Join(d.root, "local", "etc", "shop", "app.conf")
	if err := os.WriteFile(conf, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runBinary(t, bin, append([]string{"sync", "quickstart", "--wait"}, client...)...)
	if code != 0 || !strings.HasPrefix(out, "sync quickstart: state synced") {
		t.Fatalf("sync --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	inOrder(t, stderr,
		"quickstart local: observe",
		"quickstart local: observed, 1 change",
		"quickstart local: apply 1 change",
		"quickstart local: applied 1 change",
	)
	if got, _ := os.ReadFile(conf); string(got) == "edited by hand\n" {
		t.Error("the sync did not correct the hand edit")
	}
	// Without --wait, nothing but the answer.
	code, out, stderr = runBinary(t, bin, append([]string{"sync", "quickstart"}, client...)...)
	if code != 0 || stderr != "" || !strings.HasPrefix(out, "sync quickstart: state synced") {
		t.Errorf("sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}

// TestLiveProgress: the live table keeps one row per host, rewritten in
// place and cut to the terminal's width; once a new host would not fit on
// the screen, the rest comes as plain lines below the table.
func TestLiveProgress(t *testing.T) {
	var buf bytes.Buffer
	v, err := newProgressView(&buf, progressLive, false)
	if err != nil {
		t.Fatal(err)
	}
	v.width, v.height = 40, 3
	ev := func(host string, step status.Step) status.Event {
		return status.Event{Environment: "prod", Host: host, Step: step, Status: status.StatusStarted, Count: 2}
	}
	v.show(ev("web-1", status.StepObserve), ev("web-2", status.StepObserve))
	v.show(ev("web-1", status.StepApply))
	v.show(ev("web-3", status.StepObserve), ev("web-2", status.StepApply))
	want := "\x1b[2Kprod web-1: observe\n\x1b[2Kprod web-2: observe\n" +
		"\x1b[2A\x1b[2Kprod web-1: apply 2 changes\n\x1b[2Kprod web-2: observe\n" +
		"\x1b[2A\x1b[2Kprod web-1: apply 2 changes\n\x1b[2Kprod web-2: observe\n" +
		"prod web-3: observe\nprod web-2: apply 2 changes\n"
	if got := buf.String(); got != want {
		t.Errorf("screen:\n got %q\nwant %q", got, want)
	}

	buf.Reset()
	v, _ = newProgressView(&buf, progressLive, false)
	v.width = 20
	v.show(ev("a-rather-long-host-name", status.StepObserve))
	if got := buf.String(); got != "\x1b[2Kprod a-rather-long-\n" {
		t.Errorf("a long row is not cut to the width: %q", got)
	}
}
