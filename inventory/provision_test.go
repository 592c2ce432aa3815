package inventory_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/inventory"
)

// TestProvisioner: create's output gives the hosts and reaches destroy on
// its input; both see the variables; a failing command is an error that
// says which.
func TestProvisioner(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "destroyed")
	p := &config.Provision{
		Create:  `printf '{"web":{"hosts":["pr-%s"],"vars":{"commit":"%s"}}}' "$DRIFTLESS_PULL_REQUEST" "$DRIFTLESS_COMMIT"`,
		Destroy: `{ echo "$DRIFTLESS_PULL_REQUEST"; cat; } > ` + got,
	}
	vars := map[string]string{"DRIFTLESS_PULL_REQUEST": "7", "DRIFTLESS_COMMIT": "abc'd"}
	var pv inventory.Provisioner
	raw, hosts, err := pv.Create(context.Background(), p, vars)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].Name != "pr-7" || hosts[0].Vars["commit"] != "abc'd" || hosts[0].Roles[0] != "web" {
		t.Fatalf("hosts = %+v", hosts)
	}
	if err := pv.Destroy(context.Background(), p, vars, raw); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil || string(b) != "7\n"+string(raw) {
		t.Errorf("destroy saw %q (%v), want the number and %q", b, err, raw)
	}
	p.Create = "echo broken >&2; exit 3"
	if _, _, err := pv.Create(context.Background(), p, vars); err == nil || !strings.Contains(err.Error(), "exited 3: broken") {
		t.Errorf("failing create: %v", err)
	}
	p.Create = "echo not json"
	if _, _, err := pv.Create(context.Background(), p, vars); err == nil || !strings.Contains(err.Error(), "parse inventory JSON") {
		t.Errorf("bad output: %v", err)
	}
}
