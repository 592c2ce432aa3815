package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/cluster"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/monitoring"
	"github.com/driftless/driftless/test/etcdserver"
	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/promserver"
)

// alertScale maps every time threshold written in an expression of
// monitoring/alerts.yaml to the one the test uses. A threshold not listed
// here fails the test: a new rule must be given its scaled value, and a
// scenario below.
var alertScale = map[string]string{
	"> 1800": "> 4",
	"> 3600": "> 6",
	"[30m]":  "[20s]",
	"[15m]":  "[20s]",
}

// alertConstants are comparisons that are not durations and stay as
// they are.
var alertConstants = map[string]bool{"> 0": true, "== 0": true, "== 1": true}

var thresholdRE = regexp.MustCompile(`\[[0-9]+[smhdwy]\]|(?:[<>]=?|==|!=)\s*[0-9.]+`)

// scaledAlertRules returns monitoring/alerts.yaml with every for: set to
// 1s and every time threshold of an expression scaled by alertScale, and
// the names of its alerts. The rules' logic is otherwise unchanged.
func scaledAlertRules(t testing.TB) ([]byte, []string) {
	t.Helper()
	var doc struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(monitoring.AlertRules(), &doc); err != nil {
		t.Fatalf("parse alerts.yaml: %v", err)
	}
	var names []string
	for _, g := range doc.Groups {
		for _, rule := range g.Rules {
			name, _ := rule["alert"].(string)
			expr, _ := rule["expr"].(string)
			if name == "" || expr == "" {
				t.Fatalf("rule %v of group %s is not an alert with an expression", rule, g.Name)
			}
			names = append(names, name)
			if _, ok := rule["for"]; ok {
				rule["for"] = "1s"
			}
			rule["expr"] = thresholdRE.ReplaceAllStringFunc(expr, func(m string) string {
				key := strings.Join(strings.Fields(m), " ")
				if alertConstants[key] {
					return m
				}
				scaled, ok := alertScale[key]
				if !ok {
					t.Fatalf("alert %s: the test does not know how to scale %q in %q; add it to alertScale", name, m, expr)
				}
				return scaled
			})
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out, names
}

// freeLoopbackAddr returns a loopback address with a port free now, so
// that a restarted daemon is scraped at the same address.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// oneFileEnv declares environment name on host h with one file; extra
// is appended (verify steps, drift mode...).
func oneFileEnv(name string, h *hosts.Host, content, extra string) string {
	return fmt.Sprintf(`environment: %s
hosts:
  - name: %s
    address: %s
    roles: [app]
roles:
  app:
    - file: /etc/%s.conf
      content: "%s\n"
      mode: "0644"
%s`, name, h.Name, h.Address, name, content, extra)
}

// publicKeyFile writes key's armored public key to a file.
func publicKeyFile(t testing.TB, key *openpgp.Entity) string {
	t.Helper()
	var b strings.Builder
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "signers.asc", b.String(), 0o644)
}

// waitAlert waits until an alert named name whose labels include labels
// is firing (firing true) or is no longer listed at all (firing false).
func waitAlert(t testing.TB, base, name string, labels map[string]string, firing bool) {
	t.Helper()
	what := fmt.Sprintf("%s%v to fire", name, labels)
	if !firing {
		what = fmt.Sprintf("%s%v to resolve", name, labels)
	}
	waitFor(t, 2*time.Minute, 250*time.Millisecond, what, func() error {
		alerts, err := promserver.Alerts(base)
		if err != nil {
			return err
		}
		var found *promserver.Alert
		for i, a := range alerts {
			if a.Labels["alertname"] != name {
				continue
			}
			match := true
			for k, v := range labels {
				if a.Labels[k] != v {
					match = false
				}
			}
			if match {
				found = &alerts[i]
			}
		}
		switch {
		case firing && found == nil:
			return fmt.Errorf("not listed; alerts: %+v", alerts)
		case firing && found.State != "firing":
			return fmt.Errorf("state %q", found.State)
		case !firing && found != nil:
			return fmt.Errorf("still listed: %+v", *found)
		}
		return nil
	})
}

// TestEveryAlertFiresOnRealDaemon is issue 19's alert acceptance test:
// every rule of monitoring/alerts.yaml, with its for: and time thresholds
// shortened, is loaded into a real Prometheus scraping the built daemon,
// which deploys from a real Git server to real SSH hosts. Each rule's
// condition is caused on the daemon, the alert seen firing, the cause
// removed and the alert seen gone.
func TestEveryAlertFiresOnRealDaemon(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon, starts SSH hosts and Prometheus; skipped in -short")
	}
	rules, names := scaledAlertRules(t)
	rulesFile := writeFile(t, t.TempDir(), "alerts.yaml", string(rules), 0o644)

	lab := hosts.NewLab(t, hosts.Options{})
	watchHost, failHost := lab.Kind1("al-watch"), lab.Kind1("al-fail")
	cfgHost, sigHost, goneHost := lab.Kind1("al-cfg"), lab.Kind1("al-sig"), lab.Kind1("al-gone")
	var prodHosts []*hosts.Host
	for i := 1; i <= 3; i++ {
		prodHosts = append(prodHosts, lab.Kind1(fmt.Sprintf("al-prod-%d", i)))
	}
	bin, _ := buildBinaries(t, false)
	gs := gitserver.New(t)

	// infra: "watch" (drift warn), "fail" (verification), "prod" (blocked).
	infraURL := gs.CreateRepo("infra")
	infra := gs.Clone(t, "infra")
	infraV1 := infra.Commit(t, map[string]string{
		"environments/watch.yaml": oneFileEnv("watch", watchHost, "v1", "drift: warn\n"),
		"environments/fail.yaml":  oneFileEnv("fail", failHost, "v1", "drift_interval: 1h\n"),
		"environments/prod.yaml":  lostHostEnv(prodHosts, "v1", ""),
	}, "v1")
	infra.Push(t)
	// bad: gets a revision that does not validate.
	badURL := gs.CreateRepo("bad")
	bad := gs.Clone(t, "bad")
	badV1 := bad.Commit(t, map[string]string{"environments/cfg.yaml": oneFileEnv("cfg", cfgHost, "v1", "")}, "v1")
	bad.Push(t)
	// signed: only commits signed by key are deployed.
	key, err := openpgp.NewEntity("signer", "test", "signer@driftless.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	signedURL := gs.CreateRepo("signed")
	signed := gs.Clone(t, "signed")
	sigV1 := signed.CommitSigned(t, map[string]string{"environments/sig.yaml": oneFileEnv("sig", sigHost, "v1", "")}, key, "v1")
	signed.Push(t)
	// gone: its repository is taken away, then put back.
	goneURL := gs.CreateRepo("gone")
	gone := gs.Clone(t, "gone")
	goneV1 := gone.Commit(t, map[string]string{"environments/gone.yaml": oneFileEnv("gone", goneHost, "v1", "")}, "v1")
	gone.Push(t)

	addr := freeLoopbackAddr(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "driftless.yaml", fmt.Sprintf(`listen: %s
state_dir: %s
drift_interval: 2s
sources:
  - name: infra
    git: {url: %s, branch: main, interval: 1s}
  - name: bad
    git: {url: %s, branch: main, interval: 1s}
  - name: signed
    git: {url: %s, branch: main, interval: 1s, signing_keys: %s}
  - name: gone
    git: {url: %s, branch: main, interval: 1s}
ssh:
  user: root
  key_file: %s
  known_hosts: %s
  timeout: 3s
  keepalive_seconds: 1
  parallelism: 20
`, addr, filepath.Join(dir, "state"), infraURL, badURL, signedURL, publicKeyFile(t, key), goneURL,
		lab.ClientKeyFile, lab.KnownHostsFile), 0o644)
	d := startDaemon(t, bin, cfg)
	for env, commit := range map[string]string{"watch": infraV1, "fail": infraV1, "prod": infraV1, "cfg": badV1, "sig": sigV1, "gone": goneV1} {
		waitApplied(t, d, env, commit)
	}
	// A second daemon, in cluster mode against a real etcd, for the
	// cluster's alerts; Prometheus scrapes both.
	cl := startAlertCluster(t, bin)
	base := promserver.StartWith(t, promserver.Options{Targets: []string{addr, cl.addr}, RuleFiles: []string{rulesFile}})
	start := time.Now()

	// Every alert name of the file must be checked below.
	checked := map[string]bool{}
	fires := func(name string, labels map[string]string) {
		t.Helper()
		waitAlert(t, base, name, labels, true)
		checked[name] = true
		t.Logf("%s%v firing after %s", name, labels, time.Since(start).Round(time.Second))
	}
	resolves := func(name string, labels map[string]string) {
		t.Helper()
		waitAlert(t, base, name, labels, false)
		t.Logf("%s%v resolved after %s", name, labels, time.Since(start).Round(time.Second))
	}
	// Nothing fires on a healthy daemon.
	for _, name := range names {
		waitAlert(t, base, name, nil, false)
	}

	// The causes, all at once.
	// A revision whose check fails: rolled back, and "fail" takes no
	// drift pass, so no reconcile of it succeeds in the window.
	failV2 := infra.Commit(t, map[string]string{
		"environments/fail.yaml": oneFileEnv("fail", failHost, "v2", "drift_interval: 1h\nverify:\n  - name: health\n    command: \"sleep 2; exit 1\"\n    timeout: 20s\n"),
		"environments/prod.yaml": lostHostEnv(prodHosts, "v2", "verify:\n  - name: settle\n    command: \"sleep 3\"\n    timeout: 20s\n"),
	}, "v2: fail's check fails, prod's takes three seconds")
	infra.Push(t)
	// An unsigned head.
	signed.CommitSigned(t, map[string]string{"environments/sig.yaml": oneFileEnv("sig", sigHost, "v2", "")}, nil, "v2 unsigned")
	signed.Push(t)
	// A source whose repository is gone.
	if err := os.Rename(gs.Dir("gone"), gs.Dir("gone")+".away"); err != nil {
		t.Fatal(err)
	}
	// prod's second host loses its link while v2 is verified: blocked.
	lost := prodHosts[1]
	restoreLink := loseLinkAtV2(t, lost)
	// A revision that does not validate, once infra's v2 is loaded (a
	// later good load would set the gauge back).
	waitFor(t, time.Minute, 200*time.Millisecond, "fail to be rolled back", func() error {
		return gaugeIs(d, "driftless_reconcile_total", map[string]string{"environment": "fail", "result": "rolled_back"}, 1)
	})
	// Drift left in place: a hand edit under drift: warn, once v2 of
	// infra is rolled out (a rollout puts every declared resource back).
	watchHost.MustExec(t, "echo edited by hand > /etc/watch.conf")
	bad.Commit(t, map[string]string{"environments/cfg.yaml": "environment: cfg\nhosts: [\n"}, "v2 does not parse")
	bad.Push(t)

	// Rollbacks and failed checks are remembered for their window only:
	// those first.
	fires("DriftlessRollback", map[string]string{"environment": "fail", "reason": "verify"})
	fires("DriftlessVerificationFailing", map[string]string{"environment": "fail", "check": "health"})
	fires("DriftlessDriftPersistent", map[string]string{"environment": "watch"})
	fires("DriftlessReconcileFailing", map[string]string{"environment": "fail"})
	fires("DriftlessHostUnreachable", map[string]string{"environment": "prod", "host": lost.Name})
	fires("DriftlessEnvironmentBlocked", map[string]string{"environment": "prod"})
	fires("DriftlessSourceRefused", map[string]string{"source": "signed"})
	fires("DriftlessSourceDown", map[string]string{"source": "gone"})
	fires("DriftlessSourceStale", map[string]string{"source": "gone"})
	fires("DriftlessConfigInvalid", nil)

	// The causes removed.
	watchHost.MustExec(t, "echo v1 > /etc/watch.conf")
	signed.CommitSigned(t, map[string]string{"environments/sig.yaml": oneFileEnv("sig", sigHost, "v3", "")}, key, "v3 signed")
	signed.Push(t)
	if err := os.Rename(gs.Dir("gone")+".away", gs.Dir("gone")); err != nil {
		t.Fatal(err)
	}
	if err := restoreLink(); err != nil {
		t.Fatal(err)
	}
	badV3 := bad.Commit(t, map[string]string{"environments/cfg.yaml": oneFileEnv("cfg", cfgHost, "v3", "")}, "v3 validates")
	bad.Push(t)
	waitApplied(t, d, "cfg", badV3)
	// fail gets a good revision: a success in the window.
	failV3 := infra.Commit(t, map[string]string{"environments/fail.yaml": oneFileEnv("fail", failHost, "v3", "drift_interval: 1h\n")}, "v3: fail is good again")
	infra.Push(t)
	waitApplied(t, d, "fail", failV3)

	resolves("DriftlessConfigInvalid", nil)
	resolves("DriftlessDriftPersistent", map[string]string{"environment": "watch"})
	resolves("DriftlessReconcileFailing", map[string]string{"environment": "fail"})
	resolves("DriftlessHostUnreachable", map[string]string{"environment": "prod", "host": lost.Name})
	resolves("DriftlessEnvironmentBlocked", map[string]string{"environment": "prod"})
	resolves("DriftlessSourceRefused", map[string]string{"source": "signed"})
	resolves("DriftlessSourceDown", map[string]string{"source": "gone"})
	resolves("DriftlessSourceStale", map[string]string{"source": "gone"})
	// Rollbacks and failed checks are remembered for their window.
	resolves("DriftlessRollback", nil)
	resolves("DriftlessVerificationFailing", nil)
	if st, err := d.env("fail"); err != nil || st.Applied != failV3 {
		t.Errorf("fail after v3: %+v, %v", st, err)
	}
	requireRun(t, d, "fail", failV2, "rolled_back")

	// Cluster mode: a member that takes nothing (registered by hand,
	// a replica that hangs) leaves its environment without owner; etcd
	// stopped leaves the replica without its lease.
	cl.ghost(t)
	fires("DriftlessClusterEnvironmentUnowned", nil)
	cl.unghost(t)
	resolves("DriftlessClusterEnvironmentUnowned", nil)
	cl.etcd.Stop()
	fires("DriftlessClusterEtcdLost", map[string]string{"instance": cl.addr})
	cl.etcd.Restart()
	resolves("DriftlessClusterEtcdLost", nil)
	// Only the single daemon is left for the absent alert.
	cl.d.kill(t)

	// The daemon stops: absent; it starts again on the same address.
	d.kill(t)
	fires("DriftlessAbsent", nil)
	d2 := startDaemon(t, bin, cfg)
	resolves("DriftlessAbsent", nil)
	requireGauge(t, d2, "driftless_build_info", nil, 1)

	for _, name := range names {
		if !checked[name] {
			t.Errorf("alert %s of monitoring/alerts.yaml was not made to fire: give it a scenario here", name)
		}
	}
}

// alertCluster is one driftless replica in cluster mode on a real etcd,
// with one environment rendezvous hashing gives to a member named ghost.
type alertCluster struct {
	addr  string
	d     *daemon
	etcd  *etcdserver.Server
	cli   *clientv3.Client
	lease clientv3.LeaseID
	stop  context.CancelFunc
}

func startAlertCluster(t *testing.T, bin string) *alertCluster {
	t.Helper()
	c := &alertCluster{addr: freeLoopbackAddr(t), etcd: etcdserver.Start(t)}
	dir := t.TempDir()
	envs := map[string]string{}
	for i := 0; len(envs) < 2 || !slices.Contains(slices.Collect(maps.Values(envs)), "ghost"); i++ {
		name := fmt.Sprintf("cl%d", i)
		envs[name] = cluster.Owner(name, []string{"alerts", "ghost"})
	}
	if err := os.MkdirAll(filepath.Join(dir, "repo", "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name := range envs {
		writeFile(t, filepath.Join(dir, "repo", "environments"), name+".yaml", fmt.Sprintf(`environment: %s
hosts:
  - name: %s-h
    transport: local
    resources:
      - directory: /etc
      - file: /etc/app.conf
        content: "v1"
        requires: [directory:/etc]
`, name, name), 0o644)
	}
	state := filepath.Join(dir, "state")
	cfg := writeFile(t, dir, "driftless.yaml", fmt.Sprintf(`listen: %s
state_dir: %s
sources:
  - name: repo
    local: {path: %s, interval: 1s}
cluster:
  endpoints: [%s]
  replica: alerts
`, c.addr, state, filepath.Join(dir, "repo"), c.etcd.Endpoint()), 0o644)
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.LoadBox(filepath.Join(state, "store.agekey")); err != nil {
		t.Fatal(err)
	}
	c.d = startProcess(t, bin, "serve", "--config", cfg, "--sandbox-root", filepath.Join(dir, "root"))
	var err error
	c.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{c.etcd.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cli.Close() })
	return c
}

// ghost registers a member named ghost, kept alive until unghost.
func (c *alertCluster) ghost(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	g, err := c.cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	c.lease = g.ID
	alive, err := c.cli.KeepAlive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range alive {
		}
	}()
	if _, err := c.cli.Put(ctx, "/driftless/members/ghost", "", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
}

// unghost takes the ghost member away.
func (c *alertCluster) unghost(t *testing.T) {
	t.Helper()
	c.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.cli.Revoke(ctx, c.lease); err != nil {
		t.Fatal(err)
	}
}
