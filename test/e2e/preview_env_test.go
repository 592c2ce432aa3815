package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
)

// hostProvider starts and stops test hosts for the provision command
// (testdata/provision), which reaches it on a Unix socket: the harness's
// hosts live as long as the test, not as long as one command.
type hostProvider struct {
	lab *hosts.Lab
	srv *http.Server

	mu        sync.Mutex
	hosts     map[string]*hosts.Host
	created   []string // the variables of each create
	destroyed []string // what each destroy received
}

func newHostProvider(t testing.TB, lab *hosts.Lab) (*hostProvider, string) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "provision.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	p := &hostProvider{lab: lab, hosts: map[string]*hosts.Host{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /create", p.create)
	mux.HandleFunc("POST /destroy", p.destroy)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p, socket
}

// create starts one kind-1 host named after the pull request and answers
// it as Ansible dynamic inventory JSON (group web).
func (p *hostProvider) create(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := "pr" + q.Get("DRIFTLESS_PULL_REQUEST") + "-web"
	p.mu.Lock()
	p.created = append(p.created, q.Get("DRIFTLESS_ENVIRONMENT")+" "+q.Get("DRIFTLESS_PULL_REQUEST")+" "+q.Get("DRIFTLESS_COMMIT"))
	p.mu.Unlock()
	h, err := p.lab.StartKind1(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	p.hosts[name] = h
	p.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"web":   map[string]any{"hosts": []string{name}, "vars": map[string]any{"greeting": "preview"}},
		"_meta": map[string]any{"hostvars": map[string]any{name: map[string]any{"ansible_host": h.Address, "ansible_user": "root"}}},
	})
}

// destroy stops the hosts named in what create printed.
func (p *hostProvider) destroy(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var inv struct {
		Web struct {
			Hosts []string `json:"hosts"`
		} `json:"web"`
	}
	if err := json.Unmarshal(b, &inv); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.destroyed = append(p.destroyed, r.URL.Query().Get("DRIFTLESS_ENVIRONMENT")+" "+strings.Join(inv.Web.Hosts, ","))
	var stop []*hosts.Host
	for _, n := range inv.Web.Hosts {
		if h := p.hosts[n]; h != nil {
			stop = append(stop, h)
			delete(p.hosts, n)
		}
	}
	p.mu.Unlock()
	for _, h := range stop {
		h.Stop()
	}
}

func (p *hostProvider) calls() (created, destroyed []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.created...), append([]string(nil), p.destroyed...)
}

// pullRequestEvent posts GitHub's signed pull_request delivery for pull
// request n of team/infra (head on branch feature).
func pullRequestEvent(t testing.TB, d *daemon, secret []byte, repoURL, action string, n int, head, login string) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"action": action, "number": n,
		"pull_request": map[string]any{
			"number": n, "merged": false,
			"user": map[string]any{"login": login},
			"head": map[string]any{"sha": head, "ref": "feature", "repo": map[string]any{"full_name": "team/infra"}},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "team/infra"}},
		},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postGitHub(d.URL, "pull_request", payload, secret); err != nil {
		t.Fatal(err)
	}
}

// giteaPullRequest posts Gitea's signed pull_request delivery for pull
// request n of team/infra.
func giteaPullRequest(t testing.TB, d *daemon, secret []byte, repoURL, action string, n int, head, login string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"action": action, "number": n,
		"pull_request": map[string]any{
			"number": n, "merged": false, "user": map[string]any{"login": login},
			"head": map[string]any{"sha": head, "ref": "feature", "repo": map[string]any{"full_name": "team/infra"}},
			"base": map[string]any{"ref": "main"},
		},
		"repository": map[string]any{"full_name": "team/infra", "clone_url": repoURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if err := postHook(d.URL, "gitea", map[string]string{"X-Gitea-Event": "pull_request", "X-Gitea-Delivery": deliveryID(),
		"X-Gitea-Signature": hex.EncodeToString(mac.Sum(nil))}, body); err != nil {
		t.Fatal(err)
	}
}

// TestPreviewEnvironmentOnRealHosts is issue 17's preview acceptance on the
// built daemon, the real Git server and SSH test hosts: a pull request of
// an author not trusted makes app-pr-5 await approval and runs nothing;
// a comment approval makes the provisioner (testdata/provision, starting a
// test host) create a host, and the preview converges; a push waits for
// approval again, across a daemon restart, and an API approval applies it;
// the pull request's own provisioner never runs; closing the pull request
// destroys the host and removes the environment; a trusted author's pull
// request, through Gitea's webhook, goes through at once. (The time to live is
// tested with a settable clock in reconciler.TestPreviewTTL.)
func TestPreviewEnvironmentOnRealHosts(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts test hosts; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	provider, socket := newHostProvider(t, lab)
	goCmd := goTool(t)
	provBin := filepath.Join(t.TempDir(), "provision")
	errs := make(chan error, 1)
	go func() { errs <- goBuild(goCmd, "./testdata/provision", provBin) }()
	bin, _ := buildBinaries(t, false)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(t.TempDir(), "evil-provisioner-ran")

	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	template := func(create, content string) string {
		return fmt.Sprintf(`environment: app
preview: true
preview_ttl: 24h
provision:
  create: %s
  destroy: %s destroy %s
approval: {required: true, approvers: [alice]}
roles:
  web:
    - directory: /etc/app
    - file: /etc/app/app.conf
      content: "%s\n"
`, create, provBin, socket, content)
	}
	create := provBin + " create " + socket
	work.Commit(t, map[string]string{"environments/app.yaml": template(create, "main")}, "preview template")
	work.Push(t)

	gh := newFakeGitHub(t)
	secret := []byte("e2e-webhook-secret")
	cfgPath := daemonConfig(t, lab, repoURL, secret, driftInterval)
	dir := filepath.Dir(cfgPath)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const approveTok = "approve-e2e-token"
	giteaSecret := []byte("e2e-gitea-secret")
	cfg = []byte(strings.Replace(string(cfg), "      interval: 1h\n", "      interval: 1h\n      previews: {trusted_authors: [bob]}\n", 1))
	cfg = []byte(strings.Replace(string(cfg), "webhooks:\n", fmt.Sprintf("webhooks:\n  gitea: {file: %s}\n",
		writeFile(t, dir, "gitea.secret", string(giteaSecret)+"\n", 0o600)), 1))
	cfg = fmt.Appendf(cfg, `feedback:
  github:
    base_url: %s
    token: {file: %s}
    repository: team/infra
api:
  tokens:
    - {name: release-manager, sha256: %s, scopes: [approve]}
`, gh.srv.URL, writeFile(t, dir, "github.token", "ghs-test-token\n", 0o600), sha(approveTok))
	writeFile(t, dir, "driftless.yaml", string(cfg), 0o644)
	d := startDaemon(t, bin, cfgPath)
	waitFor(t, time.Minute, 100*time.Millisecond, "the followed branch loaded", func() error {
		return gaugeIs(d, "driftless_config_last_reload_successful", nil, 1)
	})
	if _, err := d.env("app"); err == nil {
		t.Errorf("the template itself became an environment")
	}

	// mallory's pull request changes the file and the provisioner.
	work.Checkout(t, "feature")
	one := work.Commit(t, map[string]string{"environments/app.yaml": template("touch "+evil+"; "+create, "one")}, "pr: one")
	work.Push(t)
	work.PushRef(t, "refs/pull/5/head")
	gh.setPulls(one, 5)
	pullRequestEvent(t, d, secret, repoURL, "opened", 5, one, "mallory")
	waitGate(t, d, "app-pr-5", one, "awaiting_approval", time.Minute)
	time.Sleep(2 * driftInterval) // a drift pass or two: still nothing runs
	if c, _ := provider.calls(); len(c) != 0 {
		t.Fatalf("the provisioner ran before an approval: %v", c)
	}
	if _, err := os.Stat(evil); err == nil {
		t.Fatal("the pull request's provisioner ran")
	}

	// alice approves by comment: a host is created and converged.
	githubComment(t, d.URL, secret, repoURL, 5, "alice", "/driftless approve app-pr-5 "+one[:7])
	waitApplied(t, d, "app-pr-5", one)
	c, _ := provider.calls()
	if len(c) != 1 || c[0] != "app-pr-5 5 "+one {
		t.Fatalf("creates %v, want one for app-pr-5 at %s", c, one)
	}
	provider.mu.Lock()
	h := provider.hosts["pr5-web"]
	provider.mu.Unlock()
	hostFile := func() string {
		b, err := os.ReadFile(filepath.Join(h.Root, "etc/app/app.conf"))
		if err != nil {
			return "<absent>"
		}
		return string(b)
	}
	if got := hostFile(); got != "one\n" {
		t.Fatalf("preview host's file %q", got)
	}
	if _, err := os.Stat(evil); err == nil {
		t.Fatal("the pull request's provisioner ran")
	}

	// A push waits for approval again, across a restart.
	two := work.Commit(t, map[string]string{"environments/app.yaml": template("touch "+evil+"; "+create, "two")}, "pr: two")
	work.Push(t)
	work.PushRef(t, "refs/pull/5/head")
	gh.setPulls(two, 5)
	pullRequestEvent(t, d, secret, repoURL, "synchronize", 5, two, "mallory")
	waitGate(t, d, "app-pr-5", two, "awaiting_approval", time.Minute)
	d.stop(t)
	d = startDaemon(t, bin, cfgPath)
	waitGate(t, d, "app-pr-5", two, "awaiting_approval", time.Minute)
	if got := hostFile(); got != "one\n" {
		t.Fatalf("the push was applied before its approval: %q", got)
	}
	if code, body := post(t, d, "/api/v1/environments/app-pr-5/approve", approveTok, `{"revision": "`+two+`"}`); code != http.StatusOK {
		t.Fatalf("approve the push: %d %s", code, body)
	}
	waitApplied(t, d, "app-pr-5", two)
	if got := hostFile(); got != "two\n" {
		t.Fatalf("preview host's file after the push %q", got)
	}
	if c, _ := provider.calls(); len(c) != 1 {
		t.Errorf("creates %v, want the first only", c)
	}
	if _, err := os.Stat(evil); err == nil {
		t.Fatal("the pull request's provisioner ran")
	}

	// The pull request's commits carry the preview's commit status.
	found := false
	for _, b := range gh.received() {
		found = found || strings.HasPrefix(b, "POST /api/v3/repos/team/infra/statuses/"+two) && strings.Contains(b, `"context":"driftless/app-pr-5"`)
	}
	if !found {
		t.Errorf("no commit status driftless/app-pr-5 on %s", two)
	}

	// Closing destroys the host and removes the environment.
	pullRequestEvent(t, d, secret, repoURL, "closed", 5, two, "mallory")
	waitFor(t, time.Minute, 100*time.Millisecond, "app-pr-5 removed", func() error {
		st, err := d.env("app-pr-5")
		if err != nil {
			return err
		}
		if st.State != "removed" {
			return fmt.Errorf("state %q", st.State)
		}
		return nil
	})
	waitFor(t, time.Minute, 100*time.Millisecond, "pr5-web destroyed", func() error {
		if _, dd := provider.calls(); len(dd) != 1 || dd[0] != "app-pr-5 pr5-web" {
			return fmt.Errorf("destroys %v, want pr5-web once", dd)
		}
		return nil
	})
	if st, _ := d.env("app-pr-5"); !strings.Contains(st.LastError, "pull request 5 closed") {
		t.Errorf("removed preview says %q", st.LastError)
	}

	// bob is a trusted author: his pull request, through Gitea's webhook,
	// goes through without an approval.
	work.Checkout(t, "main")
	work.Checkout(t, "bob")
	six := work.Commit(t, map[string]string{"environments/app.yaml": template(create, "six")}, "pr: six")
	work.Push(t)
	work.PushRef(t, "refs/pull/6/head")
	giteaPullRequest(t, d, giteaSecret, repoURL, "opened", 6, six, "bob")
	waitApplied(t, d, "app-pr-6", six)
	provider.mu.Lock()
	h6 := provider.hosts["pr6-web"]
	provider.mu.Unlock()
	if b, err := os.ReadFile(filepath.Join(h6.Root, "etc/app/app.conf")); err != nil || string(b) != "six\n" {
		t.Fatalf("bob's preview host's file %q, %v", b, err)
	}
	giteaPullRequest(t, d, giteaSecret, repoURL, "closed", 6, six, "bob")
	waitFor(t, time.Minute, 100*time.Millisecond, "pr6-web destroyed", func() error {
		if _, dd := provider.calls(); len(dd) != 2 || dd[1] != "app-pr-6 pr6-web" {
			return fmt.Errorf("destroys %v", dd)
		}
		return nil
	})
}
