package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/test/etcdserver"
	"github.com/driftless/driftless/test/gitserver"
)

// relayCluster is three `driftless serve` processes on one real etcd,
// following one repository of a real Git server that they poll only once
// an hour: a new commit reaches them by webhook.
type relayCluster struct {
	t        *testing.T
	ctx      context.Context
	cli      *clientv3.Client
	repo     *gitserver.Repo
	repoURL  string
	root     string
	secret   []byte
	token    string
	envs     []string
	replicas map[string]*serveReplica
}

func startRelayCluster(t *testing.T, ctx context.Context, nEnvs int) *relayCluster {
	bin := buildBinary(t)
	srv := etcdserver.Start(t)
	gs := gitserver.New(t)
	dir := t.TempDir()
	rc := &relayCluster{t: t, ctx: ctx, repoURL: gs.CreateRepo("infra"), root: filepath.Join(dir, "root"),
		secret: []byte("relay-webhook-secret"), token: "relay-api-token", replicas: map[string]*serveReplica{}}
	rc.repo = gs.Clone(t, "infra")
	files := map[string]string{}
	for i := 1; i <= nEnvs; i++ {
		e := fmt.Sprintf("e%02d", i)
		rc.envs = append(rc.envs, e)
		files["environments/"+e+".yaml"] = clusterEnv(e, "one")
	}
	rc.repo.Commit(t, files, "one")
	rc.repo.Push(t)
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(dir, "store.agekey")
	if _, err := secrets.LoadBox(key); err != nil {
		t.Fatal(err)
	}
	keyData, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "hook.secret"), rc.secret)
	write(filepath.Join(dir, "api.token"), []byte(rc.token))
	for _, name := range []string{"a", "b", "c"} {
		state := filepath.Join(dir, name)
		if err := os.MkdirAll(state, 0o750); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(state, "store.agekey"), keyData)
		r := &serveReplica{name: name, addr: freeAddr(t), logs: &strings.Builder{}}
		cfg := fmt.Sprintf(`listen: %s
state_dir: %s
drift_interval: 1h
sources:
  - name: infra
    git: {url: %s, branch: main, interval: 1h}
webhooks:
  github: {file: %s}
api:
  token: {file: %s}
cluster:
  endpoints: [%s]
  replica: %s
`, r.addr, state, rc.repoURL, filepath.Join(dir, "hook.secret"), filepath.Join(dir, "api.token"), srv.Endpoint(), name)
		cfgPath := filepath.Join(state, "driftless.yaml")
		write(cfgPath, []byte(cfg))
		r.cmd = exec.CommandContext(ctx, bin, "serve", "-config", cfgPath, "-sandbox-root", rc.root, "-log-level", "debug")
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
		rc.replicas[name] = r
	}
	rc.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.cli.Close() })
	deadline := time.Now().Add(90 * time.Second)
	for _, e := range rc.envs {
		if err := waitFor(ctx, deadline, func() bool { return rc.content(e) == "one" }); err != nil {
			t.Fatalf("host of %s did not converge on the first revision: %v", e, err)
		}
	}
	if err := waitFor(ctx, deadline, func() bool { return len(rc.owners()) == len(rc.envs) }); err != nil {
		t.Fatalf("not every environment has an owner: %v", rc.owners())
	}
	return rc
}

// owners reads the ownership keys: environment -> replica.
func (rc *relayCluster) owners() map[string]string {
	resp, err := rc.cli.Get(rc.ctx, "/driftless/owners/", clientv3.WithPrefix())
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), "/driftless/owners/")] = string(kv.Value)
	}
	return out
}

// content is what the host of env holds in its file.
func (rc *relayCluster) content(env string) string {
	got, _ := os.ReadFile(filepath.Join(rc.root, env+"-h", "etc", "app.conf"))
	return string(got)
}

// ownerAndOther returns the replica owning env and another one.
func (rc *relayCluster) ownerAndOther(env string) (owner, other *serveReplica) {
	o := rc.owners()[env]
	for _, name := range []string{"a", "b", "c"} {
		if name == o {
			owner = rc.replicas[name]
		} else if other == nil {
			other = rc.replicas[name]
		}
	}
	if owner == nil {
		rc.t.Fatalf("%s has no owner: %v", env, rc.owners())
	}
	return owner, other
}

// push commits content for env and pushes it; nothing tells the replicas.
func (rc *relayCluster) push(env, content string) string {
	sha := rc.repo.Commit(rc.t, map[string]string{"environments/" + env + ".yaml": clusterEnv(env, content)}, content)
	rc.repo.Push(rc.t)
	return sha
}

// hook posts a signed GitHub push of commit to replica r.
func (rc *relayCluster) hook(r *serveReplica, commit string) {
	body, err := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "after": commit,
		"repository": map[string]any{"full_name": "team/infra", "clone_url": rc.repoURL},
	})
	if err != nil {
		rc.t.Fatal(err)
	}
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write(body)
	var id [8]byte
	_, _ = rand.Read(id[:])
	req, err := http.NewRequestWithContext(rc.ctx, http.MethodPost, "http://"+r.addr+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		rc.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", hex.EncodeToString(id[:]))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		rc.t.Fatalf("webhook to %s: %s", r.name, resp.Status)
	}
}

// api calls the API of replica r and decodes a 2xx answer into out; it
// returns the status code.
func (rc *relayCluster) api(r *serveReplica, method, path, body string, out any) int {
	req, err := http.NewRequestWithContext(rc.ctx, method, "http://"+r.addr+path, strings.NewReader(body))
	if err != nil {
		rc.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+rc.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			rc.t.Fatalf("%s %s on %s: %v: %s", method, path, r.name, err, data)
		}
	}
	if resp.StatusCode/100 != 2 {
		rc.t.Logf("%s %s on %s: %s: %s", method, path, r.name, resp.Status, data)
	}
	return resp.StatusCode
}

// runOf waits for env's run of commit in the shared history, as replica r
// serves it.
func (rc *relayCluster) runOf(r *serveReplica, env, commit string) store.Run {
	var found store.Run
	if err := waitFor(rc.ctx, time.Now().Add(30*time.Second), func() bool {
		var runs []store.Run
		rc.api(r, http.MethodGet, "/api/v1/environments/"+env+"/history?limit=5", "", &runs)
		for _, run := range runs {
			if run.Revision.Commit == commit {
				found = run
				return true
			}
		}
		return false
	}); err != nil {
		rc.t.Fatalf("no run of %s for %.12s within 30s", env, commit)
	}
	return found
}

// TestServeClusterRelays: three replicas, twenty environments. GET on
// each replica lists every environment with its owner (the API and the
// status page); a push webhook sent to a replica that does not own an
// environment is applied by the owner; a sync and a rollback requested on
// a non-owner are carried out by the owner, and the caller gets the
// result.
func TestServeClusterRelays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rc := startRelayCluster(t, ctx, 20)
	first := rc.repo.Head(t)
	// A push webhook to a replica that does not own the environment: the
	// owner applies it. The lead (webhook to the start of the run) is
	// measured through the owner and through another replica.
	const env = "e07"
	owner, other := rc.ownerAndOther(env)
	var direct, relayed []time.Duration
	for i := range 10 {
		to := owner
		if i%2 == 1 {
			to = other
		}
		content := fmt.Sprintf("hook %d", i)
		sha := rc.push(env, content)
		start := time.Now()
		rc.hook(to, sha)
		run := rc.runOf(other, env, sha)
		if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool { return rc.content(env) == content }); err != nil {
			t.Fatalf("the host of %s never got %q after a webhook to %s", env, content, to.name)
		}
		lead := run.Start.Sub(start)
		if to == owner {
			direct = append(direct, lead)
		} else {
			relayed = append(relayed, lead)
		}
	}
	slices.Sort(direct)
	slices.Sort(relayed)
	t.Logf("webhook to the start of the owner's run, p50 over %d: through the owner %v, through another replica %v (extra %v); all: %v, %v",
		len(direct), direct[len(direct)/2], relayed[len(relayed)/2], relayed[len(relayed)/2]-direct[len(direct)/2], direct, relayed)

	// A sync and a rollback requested on a replica that does not own the
	// environment: the owner runs them, the caller gets the result.
	head := rc.repo.Head(t)
	var st status.EnvStatus
	if code := rc.api(other, http.MethodPost, "/api/v1/environments/"+env+"/sync", "", &st); code != 200 || st.Applied != head || st.Replica != owner.name {
		t.Fatalf("sync of %s on %s = %d %+v; want 200, applied %.12s, replica %s", env, other.name, code, st, head, owner.name)
	}
	var runs []store.Run
	rc.api(other, http.MethodGet, "/api/v1/environments/"+env+"/history?limit=1", "", &runs)
	if len(runs) != 1 || runs[0].Trigger != status.TriggerSync {
		t.Errorf("newest run of %s after the sync: %+v", env, runs)
	}
	if !strings.Contains(owner.logs.String(), "request relayed by another replica") {
		t.Errorf("the owner %s did not log the relayed request", owner.name)
	}
	st = status.EnvStatus{}
	if code := rc.api(other, http.MethodPost, "/api/v1/environments/"+env+"/rollback", fmt.Sprintf(`{"to": %q}`, first), &st); code != 200 || st.Applied != first {
		t.Fatalf("rollback of %s on %s = %d %+v; want 200, applied %.12s", env, other.name, code, st, first)
	}
	if got := rc.content(env); got != "one" {
		t.Errorf("the host of %s holds %q after the rollback; want %q", env, got, "one")
	}
	// An environment no replica knows is not relayed.
	if code := rc.api(other, http.MethodPost, "/api/v1/environments/nosuch/sync", "", nil); code != http.StatusNotFound {
		t.Errorf("sync of an unknown environment on %s = %d, want 404", other.name, code)
	}

	// Every replica lists every environment with its owner and the state
	// its owner shows (read again at each look: a replica that lost its
	// lease on a loaded machine hands its environments over).
	var owners map[string]string
	lists := map[string][]status.EnvStatus{}
	byOwner := map[string]status.EnvStatus{}
	if err := waitFor(ctx, time.Now().Add(30*time.Second), func() bool {
		owners = rc.owners()
		clear(byOwner)
		for name, r := range rc.replicas {
			var envs []status.EnvStatus
			rc.api(r, http.MethodGet, "/api/v1/environments", "", &envs)
			lists[name] = envs
			for _, st := range envs {
				if owners[st.Name] == name {
					byOwner[st.Name] = st
				}
			}
		}
		for _, envs := range lists {
			if len(envs) != len(rc.envs) {
				return false
			}
			for _, st := range envs {
				own, ok := byOwner[st.Name]
				if !ok || st.Replica != owners[st.Name] || st.Applied == "" || st.Applied != own.Applied || st.State != own.State {
					return false
				}
			}
		}
		return true
	}); err != nil {
		t.Fatalf("the replicas list %+v; want the %d environments with their owners %v and the owners' state", lists, len(rc.envs), owners)
	}
	for _, name := range []string{"a", "b", "c"} {
		r := rc.replicas[name]
		for _, e := range []string{"e01", "e20"} {
			var st status.EnvStatus
			if code := rc.api(r, http.MethodGet, "/api/v1/environments/"+e, "", &st); code != 200 || st.Replica != owners[e] || st.Applied != byOwner[e].Applied || st.State != status.StateSynced {
				t.Errorf("replica %s: GET %s = %d %+v; want owner %s, applied %.12s, synced", name, e, code, st, owners[e], byOwner[e].Applied)
			}
		}
		resp, err := http.Get("http://" + r.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, e := range rc.envs {
			section := string(page)
			if i := strings.Index(section, `<h2 id="`+e+`">`); i >= 0 {
				section = section[i:]
				if j := strings.Index(section[1:], "<h2 "); j >= 0 {
					section = section[:j+1]
				}
			} else {
				t.Fatalf("the status page of %s does not show %s", name, e)
			}
			if !strings.Contains(section, `<td class="replica">`+owners[e]+`</td>`) {
				t.Errorf("the status page of %s does not name %s's owner %s", name, e, owners[e])
			}
		}
	}
}
