package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/examples/quickstart"
)

// demoConfig is the embedded default configuration of the demo daemon:
// the example repository as a local folder source, a short drift interval,
// everything inside one temporary folder.
const demoConfig = `listen: 127.0.0.1:0
state_dir: %q
drift_interval: 2s
sources:
  - name: quickstart
    local:
      path: %q
      interval: 1s
`

// demoFile is the managed file the demo changes behind the daemon's back.
const demoFile = "etc/shop/app.conf"

func demoCmd(env *cliEnv) *cobra.Command {
	var keep bool
	var dir string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "demo [flags]",
		Short: "run the whole loop on the bundled example in a temporary sandbox",
		Long: `Run the whole loop on the bundled example, inside one folder and without
root: plan it, let a daemon apply it, edit a managed file by hand and watch
the daemon put it back, then show the metrics.`,
		Example: `  driftless demo
  driftless demo --dir /tmp/demo --keep`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return demo(c.Context(), env, dir, keep, timeout)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the daemon running after the demo, until interrupted")
	c.Flags().StringVar(&dir, "dir", "", "work folder (default: a new temporary folder, removed afterwards)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return c
}

func demo(ctx context.Context, env *cliEnv, dir string, keep bool, timeout time.Duration) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "driftless-demo-")
		if err != nil {
			return fmt.Errorf("create work folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	repo, root, state := filepath.Join(dir, "repo"), filepath.Join(dir, "root"), filepath.Join(dir, "state")
	if err := demoFolder(dir, repo, root, state); err != nil {
		return err
	}
	if err := os.CopyFS(repo, quickstart.Files()); err != nil {
		return fmt.Errorf("write the example repository: %w", err)
	}
	out := env.stdout
	fmt.Fprintf(out, "== driftless demo\nexample repository: %s\nsandbox root: %s (host \"local\" lives in %s, which stands in for its /)\n\n", repo, root, filepath.Join(root, "local"))

	fmt.Fprintln(out, "== 1. the plan: what driftless would change")
	o := oneshotFlags{root: root, level: "error"}
	plans, err := planDir(ctx, &cliEnv{stdout: io.Discard, stderr: env.stderr}, o, repo)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	writePlans(out, plans)

	cfg, err := config.ParseDaemon("demo.yaml", []byte(fmt.Sprintf(demoConfig, state, repo)))
	if err != nil {
		return fmt.Errorf("embedded demo configuration: %w", err)
	}
	log, err := newLogger(env.stderr, env.isTerminal, "info")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, log, serveHooks{localRoot: root, listening: func(a string) { addrc <- a }})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		return fmt.Errorf("daemon: %w", err)
	}
	deadline := time.Now().Add(timeout)
	metrics := "http://" + addr + "/metrics"

	fmt.Fprintf(out, "\n== 2. the daemon applies it (listening on %s)\n", addr)
	if err := waitFor(ctx, deadline, func() bool {
		return metricValue(metrics, `driftless_reconcile_total{environment="quickstart",result="success"}`) >= 1
	}); err != nil {
		return fmt.Errorf("waiting for the first apply: %w", err)
	}
	managed := filepath.Join(root, "local", demoFile)
	want, err := os.ReadFile(managed)
	if err != nil {
		return fmt.Errorf("read the managed file: %w", err)
	}
	fmt.Fprintf(out, "applied. /%s now reads:\n%s\n", demoFile, indent(string(want)))

	fmt.Fprintf(out, "== 3. someone edits /%s by hand\n", demoFile)
	if err := os.WriteFile(managed, []byte("# edited by hand\nlisten = \"0.0.0.0:9999\"\n"), 0o644); err != nil {
		return fmt.Errorf("edit the managed file: %w", err)
	}
	fmt.Fprintln(out, "the drift loop notices and puts it back...")
	if err := waitFor(ctx, deadline, func() bool {
		got, err := os.ReadFile(managed)
		return err == nil && string(got) == string(want)
	}); err != nil {
		return fmt.Errorf("waiting for the drift to be corrected: %w", err)
	}
	// The file is back before the run that put it back is counted: wait
	// for the count, so that the metrics below include the correction.
	if err := waitFor(ctx, deadline, func() bool {
		return metricValue(metrics, `driftless_reconcile_total{environment="quickstart",result="success"}`) >= 2
	}); err != nil {
		return fmt.Errorf("waiting for the drift correction to be counted: %w", err)
	}
	fmt.Fprintf(out, "corrected: /%s is back to the declared content.\n\n", demoFile)

	fmt.Fprintf(out, "== 4. metrics: %s\n", metrics)
	for _, l := range metricLines(metrics, "driftless_reconcile_total", "driftless_changes_applied_total", "driftless_drift_resources") {
		fmt.Fprintf(out, "  %s\n", l)
	}
	if keep {
		fmt.Fprintf(out, "\nthe daemon keeps running on %s; press Ctrl-C to stop.\n", addr)
		<-ctx.Done()
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintln(out, "\ndemo finished.")
	fmt.Fprintf(out, `
next:
  - try your own repository safely: driftless plan --sandbox-root %s DIR
  - run the daemon on a server: docs/getting-started.md
  - operate it (status page, metrics, rollbacks): docs/operations.md
`, filepath.Join(dir, "mine"))
	return nil
}

// demoMarker marks a folder the demo prepared, so that a second run in the
// same folder may replace what the first one left, and nothing else.
const demoMarker = ".driftless-demo"

// demoFolder prepares the work folder: the repository, root and state of
// an earlier demo in it are removed; a folder holding those names without
// the demo's marker is refused, since they are not the demo's to remove.
func demoFolder(dir string, parts ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create work folder: %w", err)
	}
	marker := filepath.Join(dir, demoMarker)
	_, err := os.Stat(marker)
	ours := err == nil
	for _, p := range parts {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if !ours {
			return fmt.Errorf("%s already exists and was not made by the demo: choose another --dir", p)
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove the earlier demo's %s: %w", p, err)
		}
	}
	if err := os.WriteFile(marker, []byte("made by driftless demo; its repo, root and state are replaced on the next run\n"), 0o644); err != nil {
		return fmt.Errorf("mark work folder: %w", err)
	}
	return nil
}

// waitFor polls cond until it holds, ctx ends or the deadline passes.
func waitFor(ctx context.Context, deadline time.Time, cond func() bool) error {
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// metricLines fetches the metrics page and returns the sample lines of the named metrics.
func metricLines(url string, names ...string) []string {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		for _, n := range names {
			if strings.HasPrefix(l, n+"{") || strings.HasPrefix(l, n+" ") {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// metricValue returns the value of one exact series, or -1 when absent.
func metricValue(url, series string) float64 {
	for _, l := range metricLines(url, series[:strings.IndexByte(series+"{", '{')]) {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
