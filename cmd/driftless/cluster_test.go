package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/test/etcdserver"
)

// clusterEnv is environment name's file: one local host, name-h, with one
// file whose content is content.
func clusterEnv(name, content string) string {
	return fmt.Sprintf(`environment: %s
hosts:
  - name: %s-h
    transport: local
    resources:
      - directory: /etc
      - file: /etc/app.conf
        content: %q
        requires: [directory:/etc]
`, name, name, content)
}

// serveReplica is one `driftless serve` process of TestServeCluster.
type serveReplica struct {
	name, addr string
	cmd        *exec.Cmd
	logs       *strings.Builder
}

// TestServeCluster runs three replicas (the built binary, three
// processes) on one real etcd, one local folder source and hosts in one
// sandbox. Every environment is owned by exactly one replica, the
// environments are spread, each replica is ready and every host
// converges. SIGKILL of a replica owning environments while a revision
// rolls out: the others take its environments within the lease TTL and
// converge them. A replica paused (SIGSTOP) past its lease is taken over
// and, resumed, leaves the hosts as the new owner wrote them. With etcd
// stopped, no replica is ready.
func TestServeCluster(t *testing.T) {
	bin := buildBinary(t)
	srv := etcdserver.Start(t)
	dir := t.TempDir()
	repo, root := filepath.Join(dir, "repo"), filepath.Join(dir, "root")
	envs := []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"}
	write := func(content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(repo, "environments"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			if err := os.WriteFile(filepath.Join(repo, "environments", e+".yaml"), []byte(clusterEnv(e, content)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("one")
	// Every replica seals the journal with the same store.agekey.
	key := filepath.Join(dir, "store.agekey")
	if _, err := secrets.LoadBox(key); err != nil {
		t.Fatal(err)
	}
	keyData, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := func(name string) *serveReplica {
		state := filepath.Join(dir, name)
		if err := os.MkdirAll(state, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(state, "store.agekey"), keyData, 0o600); err != nil {
			t.Fatal(err)
		}
		r := &serveReplica{name: name, addr: freeAddr(t), logs: &strings.Builder{}}
		cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\ndrift_interval: 1h\nsources:\n  - name: repo\n    local: {path: %s, interval: 1s}\n"+
			"cluster:\n  endpoints: [%s]\n  replica: %s\n  lease_ttl: 2s\n", r.addr, state, repo, srv.Endpoint(), name)
		cfgPath := filepath.Join(state, "driftless.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.CommandContext(ctx, bin, "serve", "-config", cfgPath, "-sandbox-root", root)
		r.cmd.Stderr = r.logs
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			_ = r.cmd.Wait()
			if t.Failed() {
				t.Logf("replica %s logs:\n%s", r.name, r.logs.String())
			}
		})
		return r
	}
	replicas := []*serveReplica{start("a"), start("b"), start("c")}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// owners reads the ownership keys: environment -> replica.
	owners := func() map[string]string {
		resp, err := cli.Get(ctx, "/driftless/owners/", clientv3.WithPrefix())
		if err != nil {
			return nil
		}
		out := map[string]string{}
		for _, kv := range resp.Kvs {
			out[strings.TrimPrefix(string(kv.Key), "/driftless/owners/")] = string(kv.Value)
		}
		return out
	}
	converged := func(content string) func() bool {
		return func() bool {
			for _, e := range envs {
				if got, _ := os.ReadFile(filepath.Join(root, e+"-h", "etc", "app.conf")); string(got) != content {
					return false
				}
			}
			return true
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	if err := waitFor(ctx, deadline, converged("one")); err != nil {
		t.Fatalf("hosts did not converge on the first revision: %v", err)
	}
	if err := waitFor(ctx, deadline, func() bool { return len(owners()) == len(envs) }); err != nil {
		t.Fatalf("not every environment has an owner: %v", owners())
	}
	perReplica := map[string]int{}
	for _, r := range owners() {
		perReplica[r]++
	}
	if len(perReplica) < 2 {
		t.Fatalf("environments not spread: %v", owners())
	}
	for _, r := range replicas {
		if err := waitFor(ctx, deadline, func() bool { return httpOK("http://" + r.addr + "/readyz") }); err != nil {
			t.Fatalf("replica %s never ready", r.name)
		}
		if got := metricValue("http://"+r.addr+"/metrics", fmt.Sprintf(`driftless_cluster_owned_environments{replica=%q}`, r.name)); int(got) != perReplica[r.name] {
			t.Errorf("replica %s reports %v owned environments; etcd says %d", r.name, got, perReplica[r.name])
		}
		// The cluster's other families, which the single daemon's
		// metrics test leaves to this one.
		metrics := "http://" + r.addr + "/metrics"
		if got := metricValue(metrics, "driftless_cluster_members"); got != float64(len(replicas)) {
			t.Errorf("replica %s: driftless_cluster_members = %v, want %d", r.name, got, len(replicas))
		}
		if got := metricValue(metrics, "driftless_cluster_etcd_up"); got != 1 {
			t.Errorf("replica %s: driftless_cluster_etcd_up = %v, want 1", r.name, got)
		}
		if got := metricValue(metrics, "driftless_cluster_ownership_changes_total"); got < 0 {
			t.Errorf("replica %s: driftless_cluster_ownership_changes_total is not exported", r.name)
		}
	}
	// SIGKILL the owner of e1 while the next revision rolls out.
	victimName := owners()["e1"]
	var victim *serveReplica
	for _, r := range replicas {
		if r.name == victimName {
			victim = r
		}
	}
	write("two")
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The lease (2 s) runs out, the others take over within it.
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		o := owners()
		if len(o) != len(envs) {
			return false
		}
		for _, r := range o {
			if r == victimName {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("the killed replica's environments were not taken over: %v", owners())
	}
	t.Logf("takeover %v after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	if err := waitFor(ctx, time.Now().Add(60*time.Second), converged("two")); err != nil {
		t.Fatalf("hosts did not converge on the second revision after the takeover: %v", err)
	}
	t.Logf("converged %v after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	// SIGSTOP a surviving owner past its lease: the last replica takes
	// its environments and rolls out the next revision; after SIGCONT the
	// paused replica writes nothing (the hosts keep the new content).
	var paused, last *serveReplica
	for _, r := range replicas {
		if r != victim && paused == nil {
			paused = r
		} else if r != victim {
			last = r
		}
	}
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		o := owners()
		if len(o) != len(envs) {
			return false
		}
		for _, r := range o {
			if r != last.name {
				return false
			}
		}
		return true
	}); err != nil {
		_ = paused.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("the paused replica's environments were not taken over: %v", owners())
	}
	write("three")
	if err := waitFor(ctx, time.Now().Add(60*time.Second), converged("three")); err != nil {
		_ = paused.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("hosts did not converge on the third revision while a replica was paused: %v", err)
	}
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return httpOK("http://" + paused.addr + "/readyz") }); err != nil {
		t.Fatalf("the resumed replica never became ready again")
	}
	time.Sleep(3 * time.Second) // the resumed replica's chance to write
	if !converged("three")() {
		t.Fatal("a host left the third revision after the paused replica resumed")
	}
	// etcd lost: no replica stays ready past the lease.
	srv.Stop()
	for _, r := range replicas {
		if r == victim {
			continue
		}
		if err := waitFor(ctx, time.Now().Add(15*time.Second), func() bool { return !httpOK("http://" + r.addr + "/readyz") }); err != nil {
			t.Errorf("replica %s still ready with etcd stopped", r.name)
		}
	}
}
