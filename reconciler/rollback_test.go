package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/driftless/driftless/reconciler/status"
)

// TestRollbackRestoresNewestFirst: a revision that creates a folder and a
// file inside it, and changes a file that notifies a service, fails its
// check. The rollback must undo the changes newest first (the file before
// its folder: the directory driver removes only empty folders, so the
// other order leaves the folder behind and the rollback incomplete), then
// restart the service the restored file notifies.
func TestRollbackRestoresNewestFirst(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	app := "    - service: app\n      unit: \"[Service]\\n\"\n"
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
		etc+fileRes("/etc/a.conf", "a1\n")+"      notify: [\"service:app\"]\n"+app, "")})
	if runs, err := f.r.ApplyRevision(ctx, rev1); err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("rev1: %+v %v", runs, err)
	}
	res := etc + fileRes("/etc/a.conf", "a2\n") + "      notify: [\"service:app\"]\n" + app +
		"    - directory: /etc/new\n      mode: \"0755\"\n" +
		fileRes("/etc/new/x.conf", "x\n") + "      requires: [\"directory:/etc/new\"]\n"
	rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res,
		"verify:\n  - name: broken\n    command: \"exit 1\"\n")})
	runs, err := f.r.ApplyRevision(ctx, rev2)
	if err == nil || len(runs) != 1 || runs[0].Result != status.ResultRolledBack {
		t.Fatalf("rev2: %+v %v", runs, err)
	}
	if strings.Contains(runs[0].Error, "rollback:") {
		t.Fatalf("rollback incomplete: %s", runs[0].Error)
	}
	if got := f.hostFile("h1", "/etc/new/x.conf"); got != "<absent>" {
		t.Errorf("x.conf after rollback = %q", got)
	}
	if _, err := os.Stat(filepath.Join(f.sandbox, "h1", "etc", "new")); !os.IsNotExist(err) {
		t.Errorf("the folder rev2 created is still there after the rollback (stat: %v)", err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "a1\n" {
		t.Errorf("a.conf after rollback = %q", got)
	}
	// Restarted by rev2's change and by the restore of a.conf (rev1 created
	// the service after a.conf: no restart then).
	if got := f.hostFile("h1", "/var/log/refresh.log"); got != strings.Repeat("restart app\n", 2) {
		t.Errorf("refresh.log = %q, want two restarts", got)
	}
	if j, _, _ := f.store.OpenJournal("prod"); j != nil {
		t.Error("journal left open after a complete rollback")
	}
	st, _ := f.r.Environment("prod")
	if st.Applied != rev1.Commit || !slices.Contains(st.Quarantined, rev2.Commit) {
		t.Errorf("status after rollback = %+v", st)
	}
}
