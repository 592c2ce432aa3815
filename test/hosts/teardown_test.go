package hosts

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
)

// labTraces is what a lab leaves in the root namespace while it runs.
type labTraces struct {
	bridge, aptAddr string
	netns, veths    []string
	roots           []string
	pids            []int
}

// TestTeardown runs a lab with a kind-1 host, a kind-2 host and the apt
// repository in a subtest, and checks that the subtest's cleanup removed
// all of it: namespaces, veths, the bridge, overlay mounts, the hosts'
// processes and the repository's listener.
func TestTeardown(t *testing.T) {
	var tr labTraces
	t.Run("lab", func(t *testing.T) {
		lab := NewLab(t, Options{})
		tr.bridge = lab.Bridge
		for _, h := range []*Host{lab.Kind1("td-one"), lab.Kind2("td-two")} {
			pid, err := h.leaderPid()
			if err != nil {
				t.Fatal(err)
			}
			tr.netns = append(tr.netns, h.Netns)
			tr.veths = append(tr.veths, h.veth)
			tr.roots = append(tr.roots, h.Root)
			tr.pids = append(tr.pids, pid)
		}
		url := lab.AptRepo(HelloDebs()...)
		tr.aptAddr = strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
		// While the lab runs, every trace is there: the checks below can fail.
		if err := tr.check(false); err != nil {
			t.Fatalf("a running lab: %v", err)
		}
	})
	if tr.bridge == "" || tr.aptAddr == "" {
		need.Missing(t, "the lab did not start (see the subtest)")
	}
	if err := tr.check(true); err != nil {
		t.Fatalf("after teardown: %v", err)
	}
}

// check reports the first trace that is present when gone is true, or
// absent when gone is false.
func (tr labTraces) check(gone bool) error {
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	mounts := mountPoints()
	var items []struct {
		what    string
		present bool
	}
	add := func(what string, present bool) {
		items = append(items, struct {
			what    string
			present bool
		}{what, present})
	}
	add("bridge "+tr.bridge, exists(filepath.Join("/sys/class/net", tr.bridge)))
	for i := range tr.netns {
		add("namespace "+tr.netns[i], exists(filepath.Join("/run/netns", tr.netns[i])))
		add("veth "+tr.veths[i], exists(filepath.Join("/sys/class/net", tr.veths[i])))
		add("overlay mount "+tr.roots[i], mounts[tr.roots[i]])
		add(fmt.Sprintf("process %d of %s", tr.pids[i], tr.roots[i]), alive(tr.pids[i]))
	}
	c, err := net.DialTimeout("tcp", tr.aptAddr, 2*time.Second)
	if err == nil {
		c.Close()
	}
	add("apt repository on "+tr.aptAddr, err == nil)
	for _, it := range items {
		if it.present == gone {
			if gone {
				return errors.New(it.what + " is still there")
			}
			return errors.New(it.what + " is missing")
		}
	}
	return nil
}

// mountPoints is the set of mount points of this process's namespace.
func mountPoints() map[string]bool {
	out := map[string]bool{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			out[unescapeMount(fields[4])] = true
		}
	}
	return out
}

// alive says whether pid runs. A zombie has ended: the harness killed it,
// and reaping it falls to whoever it was reparented to (this machine's
// init), not to the harness.
func alive(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may hold spaces.
	if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) {
		return st[i+2] != 'Z' && st[i+2] != 'X'
	}
	return true
}
