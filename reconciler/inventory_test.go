package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/inventory"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// TestInventory is issue 17's inventory acceptance, on the running
// reconciler: the environment's hosts come from an inventory command
// (Ansible's dynamic inventory JSON) with their roles and variables; a host
// added to the inventory is converged at the next refresh; a host removed
// from it is never touched again; and a plan of an unmerged folder uses the
// last result without running the command (nor the one the folder
// declares).
func TestInventory(t *testing.T) {
	dir := t.TempDir()
	invFile, runs, pwned := filepath.Join(dir, "inventory.json"), filepath.Join(dir, "runs"), filepath.Join(dir, "pwned")
	writeInv := func(hosts ...string) {
		t.Helper()
		body := `{"_meta": {"hostvars": {`
		for i, h := range hosts {
			if i > 0 {
				body += ","
			}
			body += `"` + h + `": {"ansible_connection": "local", "greeting": "hello ` + h + `"}`
		}
		body += `}}, "web": {"hosts": [`
		for i, h := range hosts {
			if i > 0 {
				body += ","
			}
			body += `"` + h + `"`
		}
		body += `], "vars": {"owner": "ops"}}, "monitoring": {"hosts": []}}`
		if err := os.WriteFile(invFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t)
	cache := filepath.Join(dir, "inventory-cache")
	r := f.restarted(func(o *Options) {
		loader := func(run bool) Loader {
			src := &inventory.Source{Dir: cache, Run: run}
			return func(d string) (*config.Revision, error) {
				return config.LoadRevision(d, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: f.sandbox, Inventory: src})
			}
		}
		o.Load, o.LoadUntrusted = loader(true), loader(false)
		o.DriftInterval = 100 * time.Millisecond
	})
	envFile := func(command string) string {
		return "environment: prod\ninventory:\n  command: " + command + "\n  interval: 200ms\nroles:\n  web:\n" + etc +
			"    - file: /etc/app.conf\n      template: files/app.conf.tmpl\n      mode: \"0644\"\n"
	}
	writeInv("h1")
	tmpl := "{{ .Vars.greeting }} from {{ .Vars.owner }}\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envFile("'echo run >> " + runs + "; cat " + invFile + "'"), "files/app.conf.tmpl": tmpl})

	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, revs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	revs <- rev
	eventually(t, "h1 from the inventory converged", func() bool { return f.hostFile("h1", "/etc/app.conf") == "hello h1 from ops\n" })

	// h2 joins, h1 leaves: h2 is converged at the next refresh.
	writeInv("h2")
	eventually(t, "h2 converged after the refresh", func() bool { return f.hostFile("h2", "/etc/app.conf") == "hello h2 from ops\n" })
	eventually(t, "the refresh's run in history", func() bool {
		hist, err := r.History("prod", 10)
		return err == nil && len(hist) >= 2 && hist[0].Trigger == status.TriggerInventory && hist[0].Result == status.ResultSuccess
	})
	// h1 is no longer declared: changed behind the daemon's back, it stays
	// as it is over several drift passes and refreshes.
	f.writeHostFile("h1", "/etc/app.conf", "edited by hand\n")
	time.Sleep(800 * time.Millisecond)
	if got := f.hostFile("h1", "/etc/app.conf"); got != "edited by hand\n" {
		t.Fatalf("h1, gone from the inventory, was touched: %q", got)
	}
	st, _ := r.Environment("prod")
	for _, h := range st.Hosts {
		if h.Name == "h1" {
			t.Errorf("h1 is still listed: %+v", st.Hosts)
		}
	}

	// A plan of an unmerged folder (whose inventory command would write
	// a file) uses the last result: h2, and nothing runs.
	before, _ := os.ReadFile(runs)
	unmerged := f.revision(map[string]string{"environments/prod.yaml": envFile("'touch " + pwned + "; cat " + invFile + "'"), "files/app.conf.tmpl": tmpl})
	plans, err := r.PlanRevision(ctx, unmerged)
	if err != nil || len(plans) != 1 || len(plans[0].Hosts) != 1 || plans[0].Hosts[0].Host != "h2" {
		t.Fatalf("plan of the unmerged folder: %+v %v", plans, err)
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatalf("the unmerged folder's inventory command ran (stat: %v)", err)
	}
	after, _ := os.ReadFile(runs)
	if len(after) < len(before) {
		t.Fatal("runs file shrank")
	}
	// A pull request preview of it does not run it either.
	unmerged.Preview, unmerged.PullRequest = true, 7
	revs <- unmerged
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatalf("the pull request's inventory command ran (stat: %v)", err)
	}
}
