package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/cluster"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/test/etcdserver"
	"github.com/driftless/driftless/test/hostrecord"
	"github.com/driftless/driftless/test/syncbuf"
)

// clusterRig runs `driftless serve` replicas (the built binary, one
// process each) on one real etcd, one local folder source and local hosts
// in one sandbox, and reads what they did: the ownership keys, the
// shared store, the hosts' files and write records.
type clusterRig struct {
	t               testing.TB
	ctx             context.Context
	bin             string
	srv             *etcdserver.Server
	cli             *clientv3.Client
	dir, repo, root string
	keyData         []byte
	ttl             time.Duration
	drift           string
	mu              sync.Mutex
	live            map[string]*rigReplica
	away            hostrecord.Away // when replicas were killed or stopped
}

// rigReplica is one serve process.
type rigReplica struct {
	name, addr string
	cmd        *exec.Cmd
	logs       *syncbuf.Buffer
	done       chan struct{}
}

// newClusterRig starts etcd and prepares the source, the sandbox and the
// shared store.agekey; ttl is the replicas' lease, drift their drift
// interval.
func newClusterRig(t testing.TB, ctx context.Context, bin string, ttl time.Duration, drift string) *clusterRig {
	g := &clusterRig{t: t, ctx: ctx, bin: bin, srv: etcdserver.Start(t), dir: t.TempDir(), ttl: ttl, drift: drift,
		live: map[string]*rigReplica{}, away: hostrecord.Away{}}
	g.repo, g.root = filepath.Join(g.dir, "repo"), filepath.Join(g.dir, "root")
	if err := os.MkdirAll(filepath.Join(g.repo, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(g.dir, "store.agekey")
	if _, err := secrets.LoadBox(key); err != nil {
		t.Fatal(err)
	}
	var err error
	if g.keyData, err = os.ReadFile(key); err != nil {
		t.Fatal(err)
	}
	g.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{g.srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.cli.Close() })
	return g
}

// writeEnv writes an environment's file into the source.
func (g *clusterRig) writeEnv(name, yaml string) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.repo, "environments", name+".yaml"), []byte(yaml), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// start runs replica name, with env added to its environment ("K=V"); it
// is stopped (SIGTERM, and SIGCONT should it be paused) when the test
// ends.
func (g *clusterRig) start(name string, env ...string) *rigReplica {
	g.t.Helper()
	return g.startWith(name, nil, env...)
}

// startWith is start with args added to the replica's command line.
func (g *clusterRig) startWith(name string, args []string, env ...string) *rigReplica {
	g.t.Helper()
	state := filepath.Join(g.dir, "state-"+name)
	if err := os.MkdirAll(state, 0o750); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "store.agekey"), g.keyData, 0o600); err != nil {
		g.t.Fatal(err)
	}
	r := &rigReplica{name: name, addr: freeAddr(g.t), logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\ndrift_interval: %s\nsources:\n  - name: repo\n    local: {path: %s, interval: 1s}\n"+
		"cluster:\n  endpoints: [%s]\n  replica: %s\n  lease_ttl: %s\n", r.addr, state, g.drift, g.repo, g.srv.Endpoint(), name, g.ttl)
	cfgPath := filepath.Join(state, "driftless.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		g.t.Fatal(err)
	}
	r.cmd = exec.CommandContext(g.ctx, g.bin, append([]string{"serve", "-config", cfgPath, "-sandbox-root", g.root}, args...)...)
	r.cmd.Stderr = r.logs
	r.cmd.Env = append(os.Environ(), env...)
	// A replica outliving a failed test binary is killed with it.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	g.mu.Lock()
	g.live[name] = r
	g.mu.Unlock()
	g.t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		<-r.done
		if g.t.Failed() {
			g.t.Logf("replica %s logs (last 8 KiB):\n%s", r.name, tail(r.logs.String(), 8<<10))
		}
	})
	return r
}

// kill SIGKILLs a replica and waits until it is reaped; it returns when
// that was.
func (g *clusterRig) kill(name string) time.Time {
	g.t.Helper()
	g.mu.Lock()
	r := g.live[name]
	delete(g.live, name)
	g.mu.Unlock()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		g.t.Fatal(err)
	}
	<-r.done
	at := time.Now()
	g.mu.Lock()
	g.away[name] = append(g.away[name], hostrecord.Span{From: at})
	g.mu.Unlock()
	return at
}

// waitStopped waits until live replica name is stopped (SIGSTOP, by
// itself) and returns when that was seen: the replica was stopped by
// then.
func (g *clusterRig) waitStopped(name string, within time.Duration) (time.Time, error) {
	stat := fmt.Sprintf("/proc/%d/stat", g.pid(name))
	err := waitFor(g.ctx, time.Now().Add(within), func() bool {
		b, err := os.ReadFile(stat)
		i := strings.LastIndexByte(string(b), ')')
		return err == nil && i > 0 && strings.HasPrefix(string(b[i:]), ") T")
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("replica %s never stopped: %w", name, err)
	}
	return time.Now(), nil
}

// cont resumes replica name, stopped since stopped (SIGCONT), and notes
// that it was away meanwhile.
func (g *clusterRig) cont(name string, stopped time.Time) {
	g.t.Helper()
	g.mu.Lock()
	g.away[name] = append(g.away[name], hostrecord.Span{From: stopped, To: time.Now()})
	p := g.live[name].cmd.Process
	g.mu.Unlock()
	if err := p.Signal(syscall.SIGCONT); err != nil {
		g.t.Fatal(err)
	}
}

// replicas lists the live replicas' names, sorted.
func (g *clusterRig) replicas() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n := range g.live {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// owners reads the ownership keys: environment -> replica (nil when etcd
// does not answer).
func (g *clusterRig) owners() map[string]string {
	ctx, cancel := context.WithTimeout(g.ctx, 2*time.Second)
	defer cancel()
	resp, err := g.cli.Get(ctx, "/driftless/owners/", clientv3.WithPrefix())
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), "/driftless/owners/")] = string(kv.Value)
	}
	return out
}

// settled reports whether every one of envs is owned by the live replica
// rendezvous hashing gives it to.
func (g *clusterRig) settled(envs []string) bool {
	o, live := g.owners(), g.replicas()
	for _, e := range envs {
		if o[e] != cluster.Owner(e, live) {
			return false
		}
	}
	return true
}

// hostFile reads a file of a sandboxed host ("" when absent).
func (g *clusterRig) hostFile(host, p string) string {
	b, _ := os.ReadFile(filepath.Join(g.root, host, p))
	return string(b)
}

// record reads the write record host keeps for env.
func (g *clusterRig) record(host, env string) []hostrecord.Event {
	g.t.Helper()
	ev, err := hostrecord.Parse([]byte(g.hostFile(host, "/var/lib/driftless/fence/"+env+".log")))
	if err != nil {
		g.t.Fatalf("record of %s on %s: %v", env, host, err)
	}
	return ev
}

// checkRecord fails the test when env's record on host shows two
// replicas writing at once or a token going down (hostrecord.Check, with
// the times the rig killed or saw stopped replicas).
func (g *clusterRig) checkRecord(host, env string) []hostrecord.Event {
	g.t.Helper()
	ev := g.record(host, env)
	g.mu.Lock()
	away := make(hostrecord.Away, len(g.away))
	for n, s := range g.away {
		away[n] = slices.Clone(s)
	}
	g.mu.Unlock()
	if err := hostrecord.Check(ev, away); err != nil {
		g.t.Fatalf("%s on %s: %v", env, host, err)
	}
	return ev
}

// store opens the shared store for reading, as a replica would.
func (g *clusterRig) store() *store.EtcdStore {
	g.t.Helper()
	box, err := secrets.LoadBox(filepath.Join(g.dir, "store.agekey"))
	if err != nil {
		g.t.Fatal(err)
	}
	s, err := store.OpenEtcd(store.EtcdOptions{Client: g.cli, Prefix: "/driftless/", Box: box, CompactEvery: -1})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { _ = s.Close() })
	return s
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// pid is the process id of live replica name.
func (g *clusterRig) pid(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live[name].cmd.Process.Pid
}

// envInt reads a positive number from the environment variable name, def
// when unset (a test's or benchmark's size).
func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: not a positive number", name, v)
	}
	return n
}
