package reconciler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/need"
)

// The SIGKILL test: a child process (this test binary, re-executed) rolls
// a revision out over many files on two local hosts and is killed at a
// random moment; then recovery runs here, and every host must be on one
// revision as a whole, with no torn file and no temporary file left. Its
// native variant adds folders and links and applies through nativeDialer
// (targets.Local, the kinds' native code in process: each host's files,
// folders and links in one native call) and also checks that every
// folder's mode and every link's target belong to the same revision.

const (
	crashHosts = 2
	crashFiles = 12
)

func crashContent(version string, i int) string {
	// Several KiB per file, so a torn write would show.
	return strings.Repeat(fmt.Sprintf("%s file %d\n", version, i), 200)
}

// crashDirMode and crashLink are what the native variant's folders and
// links are in each revision.
func crashDirMode(version string) string {
	return map[string]string{"old": "0755", "new": "0750"}[version]
}
func crashLink(version string, i int) string { return fmt.Sprintf("/etc/%s-%02d", version, i) }

// crashRevision writes revision n of the SIGKILL test: hosts h0 and h1
// on the local transport, or, when addrs is set, the SSH hosts at those
// addresses.
func crashRevision(t testing.TB, repos, version string, n int, native bool, addrs []string) sources.Revision {
	var res strings.Builder
	res.WriteString(etc)
	for i := 0; i < crashFiles; i++ {
		fmt.Fprintf(&res, "    - file: /etc/f%02d.conf\n      source: files/f%02d\n      mode: \"0644\"\n", i, i)
		if native {
			fmt.Fprintf(&res, "    - directory: /etc/d%02d\n      mode: \"%s\"\n    - symlink: /etc/l%02d\n      target: %s\n",
				i, crashDirMode(version), i, crashLink(version, i))
		}
	}
	var hosts []string
	for h := 0; h < crashHosts; h++ {
		hosts = append(hosts, fmt.Sprintf("h%d", h))
	}
	commit := fmt.Sprintf("%040d", n)
	dir := filepath.Join(repos, commit)
	env := envYAML("prod", hosts, nil, res.String(), "rollout: {batch: 2}")
	if addrs != nil {
		var b strings.Builder
		b.WriteString("environment: prod\nrollout: {batch: 2}\nhosts:\n")
		for h, a := range addrs {
			fmt.Fprintf(&b, "  - name: h%d\n    address: %s\n    roles: [all]\n", h, a)
		}
		fmt.Fprintf(&b, "roles:\n  all:\n%s", res.String())
		env = b.String()
	}
	files := map[string]string{"environments/prod.yaml": env}
	for i := 0; i < crashFiles; i++ {
		files[fmt.Sprintf("files/f%02d", i)] = crashContent(version, i)
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sources.Revision{Source: "test", Commit: commit, Dir: dir}
}

// crashReconciler opens the store of a world folder and a reconciler on it.
// announcer prints "applying" when a rollout starts applying (its pending
// report, sent just before the journal opens), so the parent times its
// kill from there rather than from process start.
type announcer struct{}

func (announcer) Report(_ context.Context, r status.Report) {
	if r.Status == status.StatusPending {
		fmt.Println("applying")
	}
}

func crashReconciler(world string, dialer Dialer, reporters ...status.Reporter) (*Reconciler, *store.BoltStore, error) {
	s, err := store.Open(filepath.Join(world, "state.db"))
	if err != nil {
		return nil, nil, err
	}
	sandbox := filepath.Join(world, "hosts")
	r, err := New(Options{
		Store: s, Dialer: dialer, Drivers: targets.Drivers(), Registerer: prometheus.NewRegistry(),
		Load: func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: sandbox})
		},
		Logger: zerolog.Nop(), Reporters: reporters,
	})
	if err != nil {
		_ = s.Close()
		return nil, nil, err
	}
	return r, s, nil
}

// TestHelperRollout is the child: it applies the revision it is given.
func TestHelperRollout(t *testing.T) {
	world := os.Getenv(helperEnv)
	if world == "" {
		need.Optional(t, "only run as the child of the SIGKILL test")
	}
	dialer := crashDialer(os.Getenv("DRIFTLESS_HELPER_NATIVE") != "")
	if spec := os.Getenv(helperSSHEnv); spec != "" {
		d, err := crashSSHDialer(spec)
		if err != nil {
			t.Fatal(err)
		}
		// Killed before it returns, usually: the agents' sessions end
		// with this process.
		defer d.Close()
		dialer = d
	}
	r, s, err := crashReconciler(world, dialer, announcer{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer r.Close()
	rev := sources.Revision{Source: "test", Commit: os.Getenv("DRIFTLESS_HELPER_COMMIT"), Dir: os.Getenv("DRIFTLESS_HELPER_REV")}
	if _, err := r.ApplyRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	// The rollout is over: what follows (closing the store, the
	// connections) is not part of the span the parent kills within.
	fmt.Println("applied")
}

// crashDialer is the dialer of the local hosts: the local transport, or
// with native its native applies counted.
func crashDialer(native bool) Dialer {
	if native {
		return nativeDialer{new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)}
	}
	return testDialer{}
}

// sigkillParallel is how many iterations run at once on local hosts: each
// mostly waits on fsync, so a few in parallel keep the test short.
const sigkillParallel = 4

// sigkillLoop runs iterations of w, parallel at once, each killing the
// child at a random moment of its rollout.
func sigkillLoop(t *testing.T, w *crashWorld, iterations, parallel int) {
	root := t.TempDir()
	// Calibrate: rollouts left to finish, as many at once as the
	// iterations run, give the span to kill within (their mean, from the
	// child's "applying" to its "applied").
	var full time.Duration
	var cal sync.WaitGroup
	var calMu sync.Mutex
	for i := range parallel {
		cal.Add(1)
		go func() {
			defer cal.Done()
			v, ran, _, err := w.iteration(filepath.Join(root, fmt.Sprint("calibrate", i)), -1)
			if err != nil || v != "new" {
				t.Errorf("an uninterrupted rollout ended on %q: %v", v, err)
			}
			calMu.Lock()
			full += ran / time.Duration(parallel)
			calMu.Unlock()
		}()
	}
	cal.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var mu sync.Mutex
	counts := map[string]int{}
	var journaled []int
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; i < iterations; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			// Up to twice the calibrated span: parallel children run
			// slower, and some must be allowed to finish.
			delay := time.Duration(rand.Int64N(int64(2 * full)))
			v, _, n, err := w.iteration(filepath.Join(root, fmt.Sprint(i)), delay)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("iteration %d (killed after %v): %v", i, delay, err)
				return
			}
			counts[v]++
			if v == "old" {
				journaled = append(journaled, n)
			}
		}(i)
	}
	wg.Wait()
	sort.Ints(journaled)
	// A test whose kills all landed before the journal opened or after the
	// rollout ended would pass without exercising recovery: at least one
	// kill must have interrupted a rollout with snapshots recorded.
	if !t.Failed() && (len(journaled) == 0 || journaled[len(journaled)-1] == 0) {
		t.Errorf("no iteration was killed in the middle of a rollout (rolled back: %v); recovery was not exercised", journaled)
	}
	t.Logf("%d iterations in %v (%d at once; one uninterrupted rollout %v): %d rolled back to old, %d completed on new; "+
		"snapshots recorded when killed (of %d): %v",
		iterations, time.Since(begin).Round(time.Millisecond), parallel, full.Round(time.Millisecond), counts["old"], counts["new"],
		crashHosts*crashFiles, journaled)
}

func TestSIGKILLRecovery(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "spawns 30 child processes")
	}
	sigkillLoop(t, newCrashWorld(t, false), 30, sigkillParallel)
}

// TestSIGKILLRecoveryNative is the SIGKILL test with the applies going
// through the kinds' native code in process (targets.Local, counted), as
// native steps, and folders and links among the resources.
func TestSIGKILLRecoveryNative(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "spawns 30 child processes")
	}
	sigkillLoop(t, newCrashWorld(t, true), 30, sigkillParallel)
}

func TestSIGKILLSoak(t *testing.T) {
	if os.Getenv("DRIFTLESS_SOAK") == "" {
		need.Optional(t, "set DRIFTLESS_SOAK=1 for 100 iterations")
	}
	sigkillLoop(t, newCrashWorld(t, false), 100, sigkillParallel)
}
