package agent_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/hosts"
)

// buildAgent builds the driftless binary the daemon would copy to hosts:
// static, as the Makefile and the Dockerfile build it.
func buildAgent(t testing.TB) string {
	t.Helper()
	top, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("find the module: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "driftless")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/driftless")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(top)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build driftless: %v\n%s", err, out)
	}
	return bin
}

func dialHost(t testing.TB, lab *hosts.Lab, h *hosts.Host, user string) *ssh.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := ssh.Dial(ctx, ssh.Config{Address: h.Address, User: user, KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// hostResources lays out files, folders and links of every shape on h and
// returns resources observing them, kernel parameters and packages.
func hostResources(t *testing.T, h *hosts.Host, packages ...string) []config.Resource {
	h.MustExec(t, `set -e; mkdir -p /srv/a/dir /srv/a/sticky; chmod 1777 /srv/a/sticky
printf 'port = 8080\n' > /srv/a/app.conf; chmod 0640 /srv/a/app.conf; chown nobody:4242 /srv/a/app.conf
: > /srv/a/empty; printf '#!/bin/sh\n' > /srv/a/setuid; chmod 4755 /srv/a/setuid
printf '\000\001\377\n' > /srv/a/binary; seq 5000 > /srv/a/big
ln -s /srv/a/app.conf /srv/a/link; ln -s /nowhere /srv/a/dangling; mkfifo /srv/a/fifo
mkdir -p /etc/sysctl.d; printf '# x\nnet.ipv4.ip_forward = 1 \n' > /etc/sysctl.d/99-driftless-net.ipv4.ip_forward.conf`)
	big, err := exec.Command("seq", "5000").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rs []config.Resource
	for _, p := range []string{"/srv/a/app.conf", "/srv/a/empty", "/srv/a/setuid", "/srv/a/binary", "/srv/a/missing",
		"/srv/a/app.conf/below", "/srv/a/dir", "/srv/a/link", "/srv/a/fifo"} {
		rs = append(rs, config.Resource{Kind: "file", Name: p, Spec: &config.FileSpec{Content: "x"}})
	}
	rs = append(rs,
		config.Resource{Kind: "file", Name: "/srv/a/big", Spec: &config.FileSpec{Content: string(big)}},
		config.Resource{Kind: "file", Name: "/etc/hostname", Spec: &config.FileSpec{Content: strings.Repeat("y", 20000)}})
	for _, p := range []string{"/srv/a/dir", "/srv/a/sticky", "/srv/a/none", "/srv/a/app.conf", "/root", "/tmp"} {
		rs = append(rs, config.Resource{Kind: "directory", Name: p, Spec: &config.DirectorySpec{}})
	}
	for _, p := range []string{"/srv/a/link", "/srv/a/dangling", "/srv/a/dir", "/srv/a/none"} {
		rs = append(rs, config.Resource{Kind: "symlink", Name: p, Spec: &config.SymlinkSpec{Target: "/x"}})
	}
	for _, n := range []string{"net.ipv4.ip_forward", "net.ipv4.tcp_rmem", "kernel.hostname", "kernel.nonesuch"} {
		rs = append(rs, config.Resource{Kind: "sysctl", Name: n, Spec: &config.SysctlSpec{Value: "1"}})
	}
	for _, n := range packages {
		rs = append(rs, config.Resource{Kind: "package", Name: n, Spec: &config.PackageSpec{}})
	}
	return rs
}

// sameStates observes rs through the shell probes of tr and through the
// agent of at, and fails unless states and errors are the same.
func sameStates(t *testing.T, tr targets.Transport, at targets.Transport, rs []config.Resource) map[string]targets.State {
	t.Helper()
	ctx := context.Background()
	drivers := targets.Drivers()
	want, wantErr := targets.Observe(ctx, tr, drivers, rs)
	got, gotErr := targets.Observe(ctx, at, drivers, rs)
	for _, r := range rs {
		if !reflect.DeepEqual(got[r.ID()], want[r.ID()]) {
			t.Errorf("%s:\nagent %+v\nshell %+v", r.ID(), got[r.ID()], want[r.ID()])
		}
	}
	// The same resources fail; the messages may differ ("open ...:
	// permission denied" against base64's "Permission denied").
	if len(got) != len(want) || !reflect.DeepEqual(failedIDs(gotErr), failedIDs(wantErr)) {
		t.Errorf("agent: %d states, %v\nshell: %d states, %v", len(got), gotErr, len(want), wantErr)
	}
	return want
}

// TestAgentOverSSH deploys the agent to real hosts (a Debian kind-1 host,
// an rpm one, a systemd kind-2 one, and as a user without root) and checks
// that it observes exactly what the shell probes observe, that it is
// copied once and kept across passes, that a dead agent is started again,
// and that a binary changed on the host is not run but copied again.
func TestAgentOverSSH(t *testing.T) {
	bin := buildAgent(t)
	lab := hosts.NewLab(t, hosts.Options{})
	d := &agent.Deployer{Own: bin}
	sum := fileSum(t, bin)
	ctx := context.Background()

	t.Run("debian kind-1", func(t *testing.T) {
		h := lab.Kind1("agent-deb")
		tr := dialHost(t, lab, h, "root")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		at := &agent.Transport{Starter: tr, Agent: rem}
		rs := hostResources(t, h, "bash", "coreutils", "openssh-server", "dl-nonesuch", "Bash_Upper")
		states := sameStates(t, tr, at, rs)
		if !states["package:bash"].Present || states["file:/srv/a/big"].Fields["mode"] != "0644" {
			t.Fatalf("the shell saw an odd host: %+v", states)
		}
		fi, err := os.Stat(filepath.Join(h.Root, "var/lib/driftless/agent", sum))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("agent binary on the host: %v %v", fi, err)
		}
		// Kept across passes: the next observations start nothing and
		// run no shell script.
		before := tr.RoundTrips()
		for range 3 {
			if _, err := targets.Observe(ctx, at, targets.Drivers(), rs); err != nil {
				t.Fatal(err)
			}
		}
		if n := tr.RoundTrips() - before; n != 0 || rem.Starts() != 1 {
			t.Fatalf("three more passes: %d round trips, %d agent starts; want 0 and 1", n, rem.Starts())
		}
		// A dead agent is started again, and the observation it was
		// killed under is asked again.
		h.MustExec(t, "kill -9 $(pidof "+sum+")")
		if _, err := targets.Observe(ctx, at, targets.Drivers(), rs); err != nil {
			t.Fatalf("observe after the agent was killed: %v", err)
		}
		if rem.Starts() != 2 {
			t.Fatalf("%d agent starts after a kill, want 2", rem.Starts())
		}
		// A binary changed on the host is not started: copied again.
		rem.Close()
		h.MustExec(t, "printf '#!/bin/sh\\necho driftless-agent-start; echo pwned >/tmp/pwned\\n' > /var/lib/driftless/agent/"+sum)
		sameStates(t, tr, at, rs)
		if _, err := os.Stat(filepath.Join(h.Root, "tmp/pwned")); err == nil {
			t.Fatal("a binary that does not hash to the daemon's ran")
		}
		if got := fileSum(t, filepath.Join(h.Root, "var/lib/driftless/agent", sum)); got != sum {
			t.Fatalf("the changed binary was not replaced: %s", got)
		}
	})

	t.Run("rpm kind-1", func(t *testing.T) {
		lab.RPMRepo(hosts.HelloRPMs()...)
		h := lab.Kind1RPM("agent-rpm")
		h.MustExec(t, "dnf -y -q install dl-hello >/dev/null 2>&1")
		tr := dialHost(t, lab, h, "root")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		states := sameStates(t, tr, &agent.Transport{Starter: tr, Agent: rem}, hostResources(t, h, "dl-hello", "bash", "dl-nonesuch", "dl-hello-2.0"))
		if p := states["package:dl-hello"]; p.Fields["manager"] != "dnf" || !p.Present || p.Fields["version"] != "2.0-1" {
			t.Fatalf("the shell saw no dl-hello 2.0: %+v", p)
		}
	})

	t.Run("systemd kind-2, a user without root", func(t *testing.T) {
		h := lab.Kind2("agent-k2")
		if err := h.AddLogin("deploy", false); err != nil {
			t.Fatal(err)
		}
		tr := dialHost(t, lab, h, "deploy")
		rem := agent.NewRemote(d)
		t.Cleanup(func() { rem.Close() })
		sameStates(t, tr, &agent.Transport{Starter: tr, Agent: rem}, hostResources(t, h, "bash", "systemd", "dl-nonesuch"))
		if _, err := os.Stat(filepath.Join(h.Root, "home/deploy/.cache/driftless/agent", sum)); err != nil {
			t.Fatalf("the agent of a user without root is not in its cache folder: %v", err)
		}
	})
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// failedIDs lists the resources an Observe error names.
func failedIDs(err error) []string {
	var ids []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var oe *targets.ObserveError
			if errors.As(e, &oe) {
				ids = append(ids, oe.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}
