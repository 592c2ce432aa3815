package reconciler

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// The SIGKILL test: a child process (this test binary, re-executed) rolls
// a revision out over many files on two local hosts and is killed at a
// random moment; then recovery runs here, and every host must be on one
// revision as a whole, with no torn file and no temporary file left.

const (
	crashHosts = 2
	crashFiles = 12
)

func crashContent(version string, i int) string {
	// Several KiB per file, so a torn write would show.
	return strings.Repeat(fmt.Sprintf("%s file %d\n", version, i), 200)
}

func crashRevision(t testing.TB, repos, version string, n int) sources.Revision {
	var res strings.Builder
	res.WriteString(etc)
	for i := 0; i < crashFiles; i++ {
		fmt.Fprintf(&res, "    - file: /etc/f%02d.conf\n      source: files/f%02d\n      mode: \"0644\"\n", i, i)
	}
	var hosts []string
	for h := 0; h < crashHosts; h++ {
		hosts = append(hosts, fmt.Sprintf("h%d", h))
	}
	commit := fmt.Sprintf("%040d", n)
	dir := filepath.Join(repos, commit)
	files := map[string]string{"environments/prod.yaml": envYAML("prod", hosts, nil, res.String(), "rollout: {batch: 2}")}
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

func (announcer) Report(_ context.Context, r Report) {
	if r.Status == StatusPending {
		fmt.Println("applying")
	}
}

func crashReconciler(world string, reporters ...Reporter) (*Reconciler, *BoltStore, error) {
	s, err := OpenStore(filepath.Join(world, "state.db"))
	if err != nil {
		return nil, nil, err
	}
	sandbox := filepath.Join(world, "hosts")
	r, err := New(Options{
		Store: s, Dialer: testDialer{}, Drivers: targets.Drivers(), Registerer: prometheus.NewRegistry(),
		Load: func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{LocalRoot: sandbox})
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
		t.Skip("only run as the child of the SIGKILL test")
	}
	r, s, err := crashReconciler(world, announcer{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer r.Close()
	rev := sources.Revision{Source: "test", Commit: os.Getenv("DRIFTLESS_HELPER_COMMIT"), Dir: os.Getenv("DRIFTLESS_HELPER_REV")}
	if _, err := r.ApplyRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a folder (regular files and folders only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		info, _ := d.Info()
		o, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

type crashWorld struct {
	base, repos string
	old, new    sources.Revision
}

// newCrashWorld applies the old revision once; each iteration copies it.
func newCrashWorld(t testing.TB) *crashWorld {
	dir := t.TempDir()
	w := &crashWorld{base: filepath.Join(dir, "base"), repos: filepath.Join(dir, "repos")}
	w.old = crashRevision(t, w.repos, "old", 1)
	w.new = crashRevision(t, w.repos, "new", 2)
	if err := os.MkdirAll(w.base, 0o755); err != nil {
		t.Fatal(err)
	}
	r, s, err := crashReconciler(w.base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ApplyRevision(context.Background(), w.old); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	_ = s.Close()
	return w
}

// iteration runs the child in a copy of the world, kills it after delay
// (never, when delay < 0), recovers, and checks the hosts. It returns
// which revision the hosts ended on, how long the child ran after it
// started applying, and how many snapshots recovery found.
func (w *crashWorld) iteration(world string, delay time.Duration) (version string, ran time.Duration, journaled int, err error) {
	if err := copyTree(w.base, world); err != nil {
		return "", 0, 0, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRollout$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+world, "DRIFTLESS_HELPER_REV="+w.new.Dir, "DRIFTLESS_HELPER_COMMIT="+w.new.Commit)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, 0, err
	}
	br := bufio.NewReader(stdout)
	if line, err := br.ReadString('\n'); err != nil || line != "applying\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", 0, 0, fmt.Errorf("child did not start: %q %v", line, err)
	}
	start := time.Now()
	if delay >= 0 {
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	_, _ = io.Copy(io.Discard, br)
	_ = cmd.Wait()
	ran = time.Since(start)

	r, s, err := crashReconciler(world)
	if err != nil {
		return "", 0, 0, err
	}
	defer s.Close()
	defer r.Close()
	if err := r.Recover(context.Background()); err != nil {
		return "", 0, 0, fmt.Errorf("recover: %w", err)
	}
	if hist, _ := s.History("prod", 1); len(hist) == 1 && hist[0].Trigger == TriggerRecovery {
		journaled = hist[0].Changes
	}
	if j, _, _ := s.OpenJournal("prod"); j != nil {
		return "", 0, 0, fmt.Errorf("journal still open after recovery")
	}
	for h := 0; h < crashHosts; h++ {
		for i := 0; i < crashFiles; i++ {
			p := filepath.Join(world, "hosts", fmt.Sprintf("h%d", h), fmt.Sprintf("etc/f%02d.conf", i))
			b, err := os.ReadFile(p)
			if err != nil {
				return "", 0, 0, err
			}
			var v string
			switch string(b) {
			case crashContent("old", i):
				v = "old"
			case crashContent("new", i):
				v = "new"
			default:
				return "", 0, 0, fmt.Errorf("%s is torn: %d bytes, starting %q", p, len(b), string(b[:min(len(b), 40)]))
			}
			if version == "" {
				version = v
			}
			if v != version {
				return "", 0, 0, fmt.Errorf("mixed revisions: %s is %s, an earlier file is %s", p, v, version)
			}
		}
	}
	var left []string
	_ = filepath.WalkDir(filepath.Join(world, "hosts"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".driftless-") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		return "", 0, 0, fmt.Errorf("temporary files left: %v", left)
	}
	want := map[string]string{"old": w.old.Commit, "new": w.new.Commit}[version]
	if rec, _, _ := s.Env("prod"); rec.Applied.Commit != want {
		return "", 0, 0, fmt.Errorf("the hosts are on the %s revision, the store says %s is applied", version, rec.Applied.Short())
	}
	return version, ran, journaled, nil
}

// sigkillParallel is how many iterations run at once: each mostly waits
// on fsync, so a few in parallel keep the test short.
const sigkillParallel = 4

func sigkillLoop(t *testing.T, iterations int) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh for the local transport")
	}
	w := newCrashWorld(t)
	root := t.TempDir()
	// Calibrate: a rollout left to finish gives the span to kill within.
	v, full, _, err := w.iteration(filepath.Join(root, "calibrate"), -1)
	if err != nil || v != "new" {
		t.Fatalf("an uninterrupted rollout ended on %q: %v", v, err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	var journaled []int
	sem := make(chan struct{}, sigkillParallel)
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
		iterations, time.Since(begin).Round(time.Millisecond), sigkillParallel, full.Round(time.Millisecond), counts["old"], counts["new"],
		crashHosts*crashFiles, journaled)
}

func TestSIGKILLRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 30 child processes")
	}
	sigkillLoop(t, 30)
}

func TestSIGKILLSoak(t *testing.T) {
	if os.Getenv("DRIFTLESS_SOAK") == "" {
		t.Skip("set DRIFTLESS_SOAK=1 for 100 iterations")
	}
	sigkillLoop(t, 100)
}
