package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

func TestClientHistory(t *testing.T) {
	w := newClientWorld(t)
	code, out, stderr := w.cli("history", "prod")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := rows(out)
	if len(r) != 3 || strings.Join(r[0], " ") != "ID START DURATION REVISION TRIGGER RESULT CHANGES DECISION ERROR" {
		t.Fatalf("table:\n%s", out)
	}
	// Newest first: run 2 applied rev2 (the file changed on two hosts),
	// run 1 rev1 (directory and file created on two hosts).
	for i, want := range []string{"2 %s revision success 2 -", "1 %s revision success 4 -"} {
		rev := []sources.Revision{w.rev2, w.rev1}[i]
		if got := strings.Join(append([]string{r[i+1][0]}, r[i+1][3:]...), " "); got != fmt.Sprintf(want, rev.Commit[:12]) {
			t.Errorf("row %d: %q", i+1, got)
		}
		if _, err := time.Parse(time.RFC3339, r[i+1][1]); err != nil {
			t.Errorf("row %d start: %v", i+1, err)
		}
	}

	code, out, _ = w.cli("history", "-n", "1", "-o", "json", "prod")
	var runs []store.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != 0 || len(runs) != 1 || runs[0].Revision.Commit != w.rev2.Commit {
		t.Fatalf("json history: exit %d, %v\n%s", code, err, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: driftless history [flags] ENVIRONMENT"},
		{[]string{"nope"}, 1, `404 Not Found: unknown environment "nope"`},
		{[]string{"-n", "0", "prod"}, 1, `400 Bad Request: limit must be a positive integer, got "0"`},
	} {
		if code, _, stderr := w.cli("history", tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("history %q: exit %d, %q", tc.args, code, stderr)
		}
	}
}

// TestHistoryShowsDecisions: the history table says who approved or
// rejected a run's revision, and when, and marks a forced sync.
func TestHistoryShowsDecisions(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	runs := []store.Run{
		{ID: 3, Trigger: "sync", Result: "success", Forced: true},
		{ID: 2, Trigger: "approval", Result: "rejected", Decision: &store.Decision{By: "gitlab:carol", At: at}, Error: "rejected by gitlab:carol"},
		{ID: 1, Trigger: "revision", Result: "success", Decision: &store.Decision{Approved: true, By: "github:alice", PullRequest: 6, At: at}},
	}
	var b strings.Builder
	if err := writeRuns(&b, runs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"forced through a closed window",
		"rejected by gitlab:carol at 2026-12-02T10:00:00Z",
		"approved by github:alice at 2026-12-02T10:00:00Z",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("history table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestClientHistoryFromStore: with -state, history reads a state store
// file when no daemon answers, and prints what the API would have.
func TestClientHistoryFromStore(t *testing.T) {
	w := newClientWorld(t)
	_, fromAPI, _ := w.cli("history", "prod")
	// The daemon keeps its store locked: work on a copy, as an operator
	// would after copying the file off a stopped machine.
	live := filepath.Join(w.d.cfg.StateDir, "state.db")
	data, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := w.cli("history", "-state", cp, "prod")
	if code != 0 || out != fromAPI {
		t.Fatalf("exit %d, %s\nfrom the store:\n%s\nfrom the API:\n%s", code, stderr, out, fromAPI)
	}
	code, out, _ = w.cli("history", "-state", cp, "-o", "json", "-n", "1", "prod")
	var runs []store.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != 0 || len(runs) != 1 || runs[0].Revision.Commit != w.rev2.Commit {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-state", cp, "nope"}, `unknown environment "nope" in ` + cp},
		{[]string{"-state", cp + ".missing", "prod"}, "read state store: stat " + cp + ".missing: no such file or directory"},
		{[]string{"-state", cp, "-n", "0", "prod"}, "-n must be a positive integer, got 0"},
		{[]string{"-state", filepath.Dir(cp), "prod"}, "is a folder; give the store file in it"},
		// The live store is locked by the daemon: a clear error after
		// the store's open timeout, not a hang.
		{[]string{"-state", live, "prod"}, "is a daemon using it? ask it with --addr instead"},
	} {
		if code, _, stderr := w.cli("history", tc.args...); code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("history %q: exit %d, %q", tc.args, code, stderr)
		}
	}
	if _, err := os.Stat(cp + ".missing"); !os.IsNotExist(err) {
		t.Errorf("reading a missing store created it: %v", err)
	}
}
