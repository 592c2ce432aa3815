package targets_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hosts"
)

// TestServerKindsProcessStarts counts the processes the agent starts on a
// kind-2 host (its own pid namespace: the namespace's last pid moves by
// one per process or thread) to observe a batch of 10 resources of each
// server kind, and to apply and restore one of each: the figures DESIGN.md
// gives. Observing services, users and groups starts nothing (D-Bus and
// the account files); packages cost one dpkg-query per batch.
func TestServerKindsProcessStarts(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind2("procs")
	tr := srvDial(t, lab, h)
	lastPid := func() int {
		t.Helper()
		n, err := strconv.Atoi(strings.TrimSpace(h.MustExec(t, "cat /proc/sys/kernel/ns_last_pid")))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Reading the counter starts processes of its own: the least two
	// reads in a row differ by.
	read := 1 << 30
	for range 5 {
		a := lastPid()
		read = min(read, lastPid()-a)
	}
	count := func(do func()) int {
		t.Helper()
		best := 1 << 30
		for range 3 { // the least of three: a thread the Go runtime adds is not the kind's
			before := lastPid()
			do()
			best = min(best, lastPid()-before-read)
		}
		return best
	}
	drivers := targets.Drivers()
	pkgs := strings.Fields(h.MustExec(t, "dpkg-query -W -f='${Package}\\n' | head -n 10"))
	batches := map[string][]config.Resource{}
	for i := range 10 {
		batches["package"] = append(batches["package"], config.Resource{Kind: "package", Name: pkgs[i], Spec: &targets.PackageSpec{}})
		batches["service"] = append(batches["service"], config.Resource{Kind: "service", Name: "dl-s" + strconv.Itoa(i), Spec: &targets.ServiceSpec{State: targets.ServiceStopped}})
		batches["user"] = append(batches["user"], config.Resource{Kind: "user", Name: []string{"root", "daemon", "bin", "sys", "nobody"}[i%5] + strings.Repeat("x", i/5), Spec: &targets.UserSpec{}})
		batches["group"] = append(batches["group"], config.Resource{Kind: "group", Name: []string{"root", "daemon", "bin", "sys", "adm"}[i%5] + strings.Repeat("x", i/5), Spec: &targets.GroupSpec{}})
	}
	var all []config.Resource
	report := map[string]int{}
	for _, kind := range []string{"package", "service", "user", "group"} {
		all = append(all, batches[kind]...)
		report["observe 10 "+kind] = count(func() {
			if _, err := targets.Observe(t.Context(), tr, drivers, batches[kind]); err != nil {
				t.Fatal(err)
			}
		})
	}
	report["observe all 40"] = count(func() {
		if _, err := targets.Observe(t.Context(), tr, drivers, all); err != nil {
			t.Fatal(err)
		}
	})

	yes := true
	steps := []config.Resource{
		{Kind: "group", Name: "dl-pg", Spec: &targets.GroupSpec{GID: 4711}},
		{Kind: "user", Name: "dl-pu", Spec: &targets.UserSpec{Groups: []string{"dl-pg"}}},
		{Kind: "service", Name: "dl-ps", Spec: &targets.ServiceSpec{Unit: "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n", State: targets.ServiceRunning, Enabled: &yes}},
	}
	// Each applied once, then restored newest first, as a rollback does:
	// they change the host, so they are counted once each.
	befores := make([]targets.State, len(steps))
	for i, r := range steps {
		befores[i] = srvHostObserve(t, tr, drivers[r.Kind], r)
		b := lastPid()
		if err := drivers[r.Kind].Apply(t.Context(), tr, r, befores[i]); err != nil {
			t.Fatal(err)
		}
		report["apply "+r.ID()] = lastPid() - b - read
	}
	for i := len(steps) - 1; i >= 0; i-- {
		r := steps[i]
		b := lastPid()
		if err := drivers[r.Kind].Restore(t.Context(), tr, r, befores[i]); err != nil {
			t.Fatal(err)
		}
		report["restore "+r.ID()] = lastPid() - b - read
	}
	var lines []string
	for k, v := range report {
		lines = append(lines, fmt.Sprintf("%s: %d", k, v))
	}
	t.Logf("processes started on the host (the counter's own read, %d, taken off):\n%s", read, strings.Join(lines, "\n"))
	// The applies are reported, not bounded: the tools themselves start
	// processes (groupadd and useradd fork to flush nscd's and sssd's
	// caches; a daemon-reload runs systemd's generators).
	for k, most := range map[string]int{"observe 10 service": 0, "observe 10 user": 0, "observe 10 group": 0, "observe 10 package": 1, "observe all 40": 1} {
		if report[k] > most {
			t.Errorf("%s started %d processes, want at most %d", k, report[k], most)
		}
	}
}
