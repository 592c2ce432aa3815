package reconciler

import (
	"context"
	"crypto/sha1"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// helperEnv names the variable that makes the test binary the child of the
// SIGKILL test.
const helperEnv = "DRIFTLESS_HELPER_ROLLOUT"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// Re-executed as the child of the SIGKILL test: run the rollout
		// it asks for, without the leak check (the parent kills us).
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testDialer reaches local hosts through the real local transport. A host
// with an address is dialled over TCP first, as an SSH transport would,
// so a closed port is a real "connection refused".
type testDialer struct{}

func (testDialer) Transport(ctx context.Context, h *config.Host) (targets.Transport, error) {
	if h.Transport == "local" || h.Address == "" || h.Address == "local" {
		return targets.NewLocal(h.Root), nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.Address, strconv.Itoa(h.Port)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", h.Name, err)
	}
	_ = c.Close()
	return nil, fmt.Errorf("dial %s: not an ssh server", h.Name)
}

// commandVerifier runs a host's checks of kind command through the host's
// transport: a real check, passing only when the command exits 0.
type commandVerifier struct {
	// gate, when set, is called before each host's checks (tests use it to
	// hold a rollout in the middle).
	gate func(env, host string)
}

func (v *commandVerifier) Verify(ctx context.Context, env string, h *config.Host, t targets.Transport) []CheckResult {
	if v.gate != nil {
		v.gate(env, h.Name)
	}
	var out []CheckResult
	for _, c := range h.Checks {
		if c.Kind() != "command" {
			continue
		}
		name := "command/" + verify.NameOn(h, c)
		res, err := t.Run(ctx, c.Command, nil)
		switch {
		case err != nil:
			out = append(out, CheckResult{Check: name, Reason: err.Error()})
		case res.Exit != 0:
			out = append(out, CheckResult{Check: name, Reason: fmt.Sprintf("exit %d: %s", res.Exit, res.Stderr)})
		default:
			out = append(out, CheckResult{Check: name, OK: true, Reason: "exit 0"})
		}
	}
	return out
}

// collector is a Reporter keeping every report it receives.
type collector struct {
	mu      sync.Mutex
	reports []status.Report
}

func (c *collector) Report(_ context.Context, r status.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports = append(c.reports, r)
}

func (c *collector) statuses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.reports {
		out = append(out, r.Environment+"/"+r.Status)
	}
	return out
}

// all returns every report received so far.
func (c *collector) all() []status.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]status.Report(nil), c.reports...)
}

func (c *collector) find(want string) (status.Report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reports {
		if r.Status == want {
			return r, true
		}
	}
	return status.Report{}, false
}

// fixture is one test's world: a sandbox holding every local host's root,
// a store, a registry, and the reconciler.
type fixture struct {
	t       testing.TB
	sandbox string
	repos   string
	store   *store.BoltStore
	reg     *prometheus.Registry
	rep     *collector
	ver     *commandVerifier
	r       *Reconciler
	n       int
}

type fixtureOpt func(*Options)

func newFixture(t testing.TB, opts ...fixtureOpt) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, sandbox: filepath.Join(dir, "hosts"), repos: filepath.Join(dir, "repos"),
		reg: prometheus.NewRegistry(), rep: &collector{}, ver: &commandVerifier{}}
	var err error
	if f.store, err = store.Open(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.store.Close() })
	o := f.options()
	for _, fn := range opts {
		fn(&o)
	}
	if f.r, err = New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.r.Close() })
	return f
}

func (f *fixture) options() Options {
	sandbox := f.sandbox
	return Options{
		Store: f.store, Dialer: testDialer{}, Drivers: testDrivers(),
		Load: func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: sandbox})
		},
		Verifier: f.ver, Reporters: []status.Reporter{f.rep}, Registerer: f.reg,
		Logger: zerolog.New(zerolog.NewTestWriter(f.t)).Level(zerolog.WarnLevel), Version: "test",
		HostTimeout: 30 * time.Second, ReportTimeout: 5 * time.Second,
	}
}

// testDrivers is the real driver table plus the test's service driver.
func testDrivers() map[string]targets.Driver {
	d := targets.Drivers()
	d["service"] = &markerService{}
	return d
}

// revision writes files (path -> content) as a new checkout and returns
// its revision with a fresh commit id.
func (f *fixture) revision(files map[string]string) sources.Revision {
	f.t.Helper()
	f.n++
	commit := fmt.Sprintf("%x", sha1.Sum([]byte(f.t.Name()+strconv.Itoa(f.n))))
	dir := filepath.Join(f.repos, commit)
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	return sources.Revision{Source: "test", Commit: commit, Ref: "refs/heads/main", Dir: dir, Time: time.Now()}
}

// hostFile reads a file of a local host; "<absent>" when it does not exist.
func (f *fixture) hostFile(host, p string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.sandbox, host, p))
	if os.IsNotExist(err) {
		return "<absent>"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// writeHostFile changes a host's file behind driftless's back.
func (f *fixture) writeHostFile(host, p, content string) {
	f.t.Helper()
	full := filepath.Join(f.sandbox, host, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// envYAML builds an environment file: hosts (local, with vars), the
// resources every host gets (a role), and extra top-level YAML.
func envYAML(name string, hosts []string, vars map[string]string, resources, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "environment: %s\n%s\nhosts:\n", name, extra)
	for _, h := range hosts {
		fmt.Fprintf(&b, "  - name: %s\n    transport: local\n    roles: [all]\n", h)
		if v := vars[h]; v != "" {
			fmt.Fprintf(&b, "    vars: {%s}\n", v)
		}
	}
	fmt.Fprintf(&b, "roles:\n  all:\n%s", resources)
	return b.String()
}

// fileRes is a file resource line for envYAML.
func fileRes(p, content string) string {
	return fmt.Sprintf("    - file: %s\n      content: %q\n      mode: \"0644\"\n", p, content)
}

// closedPort returns a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	return port
}

// etc is the directory resource the test files live in.
const etc = "    - directory: /etc\n      mode: \"0755\"\n"

// restarted returns a fresh reconciler on the fixture's store (with its
// own registry and the options opts change), as after a restart; the
// test's end closes it.
func (f *fixture) restarted(opts ...fixtureOpt) *Reconciler {
	f.t.Helper()
	o := f.options()
	o.Registerer = nil
	for _, fn := range opts {
		fn(&o)
	}
	r, err := New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = r.Close() })
	return r
}
