package targets_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// TestFoundationDriversOverSSH runs the file, directory, symlink, env and
// command drivers against a real kind-1 host through the agent over real
// SSH: every pass observes the host with no SSH round trip (the agent
// observes every kind, the command's guards included), a first pass converges, a
// second is a no-op, changes made on the host behind driftless's back are
// found and healed, and restoring the first pass's snapshots in reverse
// order puts the host back as it was, including what did not exist.
func TestFoundationDriversOverSSH(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("found")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tr := srvDial(t, lab, h)

	h.MustExec(t, "printf 'welcome\\n' > /etc/motd-test && chmod 0644 /etc/motd-test")
	rs := []config.Resource{
		{Kind: "directory", Name: "/srv/app", Spec: &targets.DirectorySpec{Mode: "0750", Owner: "nobody"}},
		{Kind: "file", Name: "/srv/app/app.conf", Spec: &targets.FileSpec{Content: "port = 8080\nlog = info\n", Mode: "0640"}},
		{Kind: "symlink", Name: "/srv/app/current", Spec: &targets.SymlinkSpec{Target: "/srv/app/app.conf"}},
		{Kind: "env", Name: "/etc/app.env", Spec: &targets.EnvSpec{Vars: map[string]string{"APP_PORT": "8080", "GREETING": "hello world"}}},
		{Kind: "command", Name: "init", Spec: &targets.CommandSpec{
			Run: "touch .initialised", Dir: "/srv/app", Creates: "/srv/app/.initialised", Undo: "rm -f /srv/app/.initialised"}},
		{Kind: "file", Name: "/etc/motd-test", Spec: &targets.FileSpec{State: config.Absent}},
	}
	pass := func(wantActions ...targets.Action) []targets.Change {
		t.Helper()
		before := tr.RoundTrips()
		changes, err := targets.PlanHost(ctx, tr, targets.Drivers(), rs)
		if err != nil {
			t.Fatal(err)
		}
		if n := tr.RoundTrips() - before; n != 0 {
			t.Fatalf("observing %d resources took %d SSH round trips, want 0 (the agent observes them all)", len(rs), n)
		}
		for i, c := range changes {
			if c.Action != wantActions[i] {
				t.Fatalf("%s: %s, want %s\n%s", c.ID, c.Action, wantActions[i], c.Diff)
			}
			if c.Action == targets.NoChange {
				continue
			}
			if err := targets.Drivers()[c.Kind].Apply(ctx, tr, rs[i], c.Before); err != nil {
				t.Fatalf("apply %s: %v", c.ID, err)
			}
		}
		return changes
	}
	none := targets.NoChange
	first := pass(targets.Create, targets.Create, targets.Create, targets.Create, targets.Create, targets.Delete)
	pass(none, none, none, none, none, none)
	got := h.MustExec(t, "stat -c '%a %U' /srv/app; stat -c %a /srv/app/app.conf; cat /srv/app/current; readlink /srv/app/current; . /etc/app.env; echo \"$GREETING\"; ls -a /srv/app; test -e /etc/motd-test || echo gone")
	want := "750 nobody\n640\nport = 8080\nlog = info\n/srv/app/app.conf\nhello world\n.\n..\n.initialised\napp.conf\ncurrent\ngone\n"
	if got != want {
		t.Fatalf("host after the first pass:\n%s\nwant\n%s", got, want)
	}

	// Behind driftless's back.
	h.MustExec(t, `chmod 0777 /srv/app && echo 'port = 1' > /srv/app/app.conf && ln -sfn /etc/passwd /srv/app/current &&
		sed -i 's/^APP_PORT=.*/APP_PORT=1/' /etc/app.env && rm /srv/app/.initialised && echo back > /etc/motd-test`)
	pass(targets.Update, targets.Update, targets.Update, targets.Update, targets.Create, targets.Delete)
	pass(none, none, none, none, none, none)
	if got := h.MustExec(t, "stat -c %a /srv/app; cat /srv/app/app.conf; readlink /srv/app/current; grep APP_PORT /etc/app.env"); got != "750\nport = 8080\nlog = info\n/srv/app/app.conf\nAPP_PORT=8080\n" {
		t.Fatalf("host not healed:\n%s", got)
	}

	drivers := targets.Drivers()
	for i := len(first) - 1; i >= 0; i-- {
		if err := drivers[first[i].Kind].Restore(ctx, tr, rs[i], first[i].Before); err != nil {
			t.Fatalf("restore %s: %v", first[i].ID, err)
		}
	}
	got = h.MustExec(t, "for p in /srv/app /etc/app.env; do test -e $p && echo \"$p still there\"; done; stat -c %a /etc/motd-test; cat /etc/motd-test")
	if got != "644\nwelcome\n" {
		t.Fatalf("host after restore:\n%s", got)
	}
	if !strings.Contains(first[1].Diff, "+port = 8080") {
		t.Fatalf("the file's diff over SSH lacks its content:\n%s", first[1].Diff)
	}
}

// BenchmarkObserve200FilesSSH observes 200 files on a real kind-1 host
// over SSH through the agent: one round trip, 200 queries.
func BenchmarkObserve200FilesSSH(b *testing.B) {
	lab := hosts.NewLab(b, hosts.Options{})
	h := lab.Kind1("obsbench")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tr := srvDial(b, lab, h)
	h.MustExec(b, "mkdir -p /srv/bench && for i in $(seq 0 199); do seq 20 > /srv/bench/f$i; done")
	var rs []config.Resource
	for i := range 200 {
		rs = append(rs, config.Resource{Kind: "file", Name: fmt.Sprintf("/srv/bench/f%d", i), Spec: &targets.FileSpec{Content: "x"}})
	}
	drivers := targets.Drivers()
	b.ReportAllocs()
	for b.Loop() {
		states, err := targets.Observe(ctx, tr, drivers, rs)
		if err != nil || len(states) != len(rs) {
			b.Fatalf("observe: %d states, %v", len(states), err)
		}
	}
}
