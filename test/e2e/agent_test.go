package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
)

// TestDaemonThroughAgent runs `driftless serve` on two real hosts, which
// it reaches through its agent: a push converges them, the daemon's own binary is on each
// host under its hash, and a second push converges through the same
// agents (no second copy: the binary's file is not rewritten).
func TestDaemonThroughAgent(t *testing.T) {
	lab := hosts.NewLab(t, hosts.Options{})
	hs := []*hosts.Host{lab.Kind1("agent-a"), lab.Kind1("agent-b")}
	bin, _ := buildBinaries(t, false)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	secret := []byte("agent-webhook-secret")
	hook := newGitHubHook(git, repoURL, secret)
	work := git.Clone(t, "infra")
	first := work.Commit(t, map[string]string{"environments/bench.yaml": benchEnv(hs, 1, false)}, "push 1")
	work.Push(t)
	cfg := daemonConfig(t, lab, repoURL, secret, time.Hour)
	d := startDaemon(t, bin, cfg)
	hook.setTarget(d.URL)
	waitFor(t, 2*time.Minute, 50*time.Millisecond, "the first revision to converge", func() error {
		return converged(d, hs, first, 1)
	})
	agentFile := filepath.Join("var/lib/driftless/agent", hex.EncodeToString(sum[:]))
	var stamps []time.Time
	for _, h := range hs {
		fi, err := os.Stat(filepath.Join(h.Root, agentFile))
		if err != nil || fi.Mode().Perm() != 0o700 || fi.Size() != int64(len(data)) {
			t.Fatalf("the agent on %s: %v %v", h.Name, fi, err)
		}
		stamps = append(stamps, fi.ModTime())
	}
	second := work.Commit(t, map[string]string{"environments/bench.yaml": benchEnv(hs, 2, false)}, "push 2")
	work.Push(t)
	waitFor(t, 2*time.Minute, 50*time.Millisecond, "the second revision to converge", func() error {
		return converged(d, hs, second, 2)
	})
	for i, h := range hs {
		fi, err := os.Stat(filepath.Join(h.Root, agentFile))
		if err != nil || !fi.ModTime().Equal(stamps[i]) {
			t.Fatalf("the agent on %s was copied again: %v %v", h.Name, fi, err)
		}
	}
	// The first push went before the daemon listened: the second was
	// delivered by webhook.
	if sent := hook.check(t); sent < 1 {
		t.Fatalf("%d webhooks delivered for the second push", sent)
	}
}
