package sources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/syncbuf"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchChildEnv); spec != "" {
		os.Exit(benchChild(spec))
	}
	goleak.VerifyTestMain(m)
}

// testGit builds a Git source on cfg with its own registry and log buffer.
type testGit struct {
	*Git
	reg *prometheus.Registry
	log *syncbuf.Buffer
}

func newTestGit(t *testing.T, cfg config.GitSource, creds GitCredentials) *testGit {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &syncbuf.Buffer{}
	if cfg.Interval == 0 {
		cfg.Interval = config.Duration(time.Hour)
	}
	g, err := NewGit(GitOptions{
		Name:        "app",
		Config:      cfg,
		Credentials: creds,
		Dir:         filepath.Join(t.TempDir(), "state"),
		Logger:      zerolog.New(logs),
		Registerer:  reg,
		MinBackoff:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	return &testGit{Git: g, reg: reg, log: logs}
}

// run starts src.Run and stops it when the test ends; the returned channel
// has capacity one, as the reconciler's.
func run(t *testing.T, src Source) <-chan Revision {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Revision, 1)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return out
}

func receive(t *testing.T, out <-chan Revision, within time.Duration) Revision {
	t.Helper()
	select {
	case rev := <-out:
		return rev
	case <-time.After(within):
		t.Fatalf("no revision within %s", within)
		return Revision{}
	}
}

func expectNone(t *testing.T, out <-chan Revision, during time.Duration) {
	t.Helper()
	select {
	case rev := <-out:
		t.Fatalf("unexpected revision %+v", rev)
	case <-time.After(during):
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
