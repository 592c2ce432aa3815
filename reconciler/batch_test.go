package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/agent"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/targets/ssh"
	"github.com/driftless/driftless/test/agentbin"
	"github.com/driftless/driftless/test/hosts"
)

// oneConn is a Dialer handing out one transport (the agent over one SSH
// connection) for every run, so the test can count its SSH round trips;
// closing it is left to the test.
type oneConn struct{ t *agent.Transport }

type unclosed struct{ *agent.Transport }

func (unclosed) Close() error { return nil }

func (d oneConn) Transport(context.Context, *config.Host) (targets.Transport, error) {
	return unclosed{d.t}, nil
}

// TestFileBatchOverSSH applies revisions to a real host over SSH. Ten
// changed files (and an env file) reach the host in one round trip: an
// apply changing all of them costs as many round trips as one changing a
// single file, and every file has its content, mode and owner, a
// rewritten file keeping the owner it had. Then a file of a batch fails
// (its folder is missing): the files before it were written and are
// restored by the rollback, those after it are untouched, and no
// temporary file is left.
func TestFileBatchOverSSH(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	h := lab.Kind1("batch")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tr, err := ssh.Dial(ctx, ssh.Config{Address: h.Address, KeyFiles: []string{lab.ClientKeyFile},
		KnownHostsFile: lab.KnownHostsFile, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rem := agent.NewRemote(&agent.Deployer{Own: agentbin.Build(t)})
	defer rem.Close()
	f := newFixture(t, func(o *Options) { o.Dialer = oneConn{&agent.Transport{Starter: tr, Agent: rem}} })
	// f00.conf exists, owned by daemon with mode 0600: a rewrite without a
	// declared owner or mode keeps both.
	h.MustExec(t, "mkdir -p /srv/batch && printf 'old\\n' > /srv/batch/f00.conf && chown daemon:daemon /srv/batch/f00.conf && chmod 0600 /srv/batch/f00.conf")
	const n = 10
	res := func(version string, only int, broken int) string {
		var b strings.Builder
		b.WriteString("    - directory: /srv/batch\n      mode: \"0755\"\n")
		for i := range n {
			v := version
			if only >= 0 && i != only {
				v = "v1"
			}
			dir := "/srv/batch"
			if i == broken {
				dir = "/srv/missing"
			}
			fmt.Fprintf(&b, "    - file: %s/f%02d.conf\n      content: \"%s file %d\\n\"\n      requires: [\"directory:/srv/batch\"]\n", dir, i, v, i)
			switch {
			case i == 0:
			case i%3 == 1:
				b.WriteString("      mode: \"0640\"\n      owner: nobody\n      group: nogroup\n")
			case i%3 == 2:
				b.WriteString("      mode: \"0600\"\n      owner: \"65534\"\n")
			default:
				b.WriteString("      mode: \"0644\"\n")
			}
		}
		if only >= 0 {
			version = "v1"
		}
		fmt.Fprintf(&b, "    - env: /srv/batch/app.env\n      vars: {VERSION: %s}\n      requires: [\"directory:/srv/batch\"]\n", version)
		return b.String()
	}
	env := func(resources string) string {
		return fmt.Sprintf("environment: prod\nhosts:\n  - name: b1\n    address: %s\n    roles: [all]\nroles:\n  all:\n%s", h.Address, resources)
	}
	apply := func(resources string) (store.Run, int64) {
		t.Helper()
		before := tr.RoundTrips()
		runs, err := f.r.ApplyRevision(ctx, f.revision(map[string]string{"environments/prod.yaml": env(resources)}))
		if len(runs) != 1 {
			t.Fatalf("runs %+v: %v", runs, err)
		}
		return runs[0], tr.RoundTrips() - before
	}
	if run, _ := apply(res("v1", -1, -1)); run.Result != status.ResultSuccess {
		t.Fatalf("v1: %+v", run)
	}
	// One file changes, then all of them (and the env file).
	one, oneTrips := apply(res("v2", 4, -1))
	all, allTrips := apply(res("v3", -1, -1))
	if one.Result != status.ResultSuccess || one.Changes != 1 || all.Result != status.ResultSuccess || all.Changes != n+1 {
		t.Fatalf("one file: %s, %d changes; all files: %s, %d changes", one.Result, one.Changes, all.Result, all.Changes)
	}
	if allTrips != oneTrips {
		t.Errorf("changing %d files took %d round trips, changing one took %d; want the same", n+1, allTrips, oneTrips)
	}
	t.Logf("round trips of a run changing 1 file: %d; %d files: %d", oneTrips, n+1, allTrips)
	assertV3 := func() {
		t.Helper()
		for i := range n {
			p := filepath.Join(h.Root, fmt.Sprintf("srv/batch/f%02d.conf", i))
			mode, owner := os.FileMode(0o644), "65534:65534"
			switch {
			case i == 0:
				mode, owner = 0o600, "1:1"
			case i%3 == 1:
				mode = 0o640
			case i%3 == 2:
				mode, owner = 0o600, "65534:0"
			default:
				owner = "0:0"
			}
			assertHostFile(t, p, fmt.Sprintf("v3 file %d\n", i), mode, owner)
		}
		assertHostFile(t, filepath.Join(h.Root, "srv/batch/app.env"), "VERSION=v3\n", 0o644, "0:0")
	}
	assertV3()

	// f05 is declared in a folder that does not exist: its write fails in
	// the middle of the batch.
	broken, brokenTrips := apply(res("v4", -1, 5))
	if broken.Result != status.ResultRolledBack && broken.Result != status.ResultFailed {
		t.Fatalf("a failed write gave %+v", broken)
	}
	// The rollback restores the 11 files newest first: app.env and f09 to
	// f06 in one call, f05 (not there before) removed, f04 to f00 in one
	// call; three round trips beyond the observation and the failed write.
	if brokenTrips > oneTrips+3 {
		t.Errorf("a run whose write failed and was rolled back took %d round trips, want at most %d", brokenTrips, oneTrips+3)
	}
	t.Logf("round trips of a run rolled back after a failed write of %d files: %d", n+1, brokenTrips)
	if !strings.Contains(broken.Error, "/srv/missing/f05.conf") {
		t.Errorf("the run's error does not name the failed file: %s", broken.Error)
	}
	// Everything is back on v3: the files written before f05 restored,
	// with their modes and owners, the others as they were.
	assertV3()
	if left, _ := filepath.Glob(filepath.Join(h.Root, "srv/*/.*.driftless-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(h.Root, "srv/missing")); !os.IsNotExist(err) {
		t.Errorf("the missing folder appeared: %v", err)
	}
}

// assertHostFile checks a file's content, mode and owner ("uid:gid").
func assertHostFile(t *testing.T, p, content string, mode os.FileMode, owner string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != content {
		t.Errorf("%s holds %q (%v), want %q", p, got, err, content)
		return
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || fmt.Sprintf("%d:%d", st.Uid, st.Gid) != owner {
		t.Errorf("%s: mode %v owner %d:%d, want %v %s", p, fi.Mode().Perm(), st.Uid, st.Gid, mode, owner)
	}
}
