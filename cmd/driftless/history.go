package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/driftless/driftless/reconciler"
)

func runHistory(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var cf clientFlags
	cf.register(fs, false)
	n := fs.Int("n", 20, "how many runs")
	state := fs.String("state", "", "read a state store file instead of asking a daemon (the daemon must be stopped: it locks the file)")
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.stderr, "usage: driftless history [flags] ENVIRONMENT")
		return 2
	}
	if *state != "" {
		return clientRun(env, cf, func(*apiClient) ([]byte, error) {
			runs, err := storeHistory(*state, fs.Arg(0), *n)
			if err != nil {
				return nil, err
			}
			if cf.output == "json" {
				return json.MarshalIndent(runs, "", "  ")
			}
			return nil, writeRuns(env.stdout, runs)
		})
	}
	return clientRun(env, cf, func(c *apiClient) ([]byte, error) {
		var runs []reconciler.Run
		raw, err := c.do(ctx, http.MethodGet, envPath(fs.Arg(0))+"/history?limit="+strconv.Itoa(*n), nil, &runs)
		if err != nil || cf.output == "json" {
			return raw, err
		}
		return nil, writeRuns(env.stdout, runs)
	})
}

// storeHistory reads an environment's runs from a state store file, for
// when no daemon runs (after a crash, or on a copy of the file).
func storeHistory(path, name string, n int) ([]reconciler.Run, error) {
	if n <= 0 {
		return nil, fmt.Errorf("-n must be a positive integer, got %d", n)
	}
	if _, err := os.Stat(path); err != nil {
		// Opening would create an empty store: say the file is missing instead.
		return nil, fmt.Errorf("read state store: %w", err)
	}
	store, err := reconciler.OpenStore(path)
	if err != nil {
		return nil, fmt.Errorf("%w (is a daemon using it? ask it with -addr instead)", err)
	}
	defer store.Close()
	recs, err := store.Envs()
	if err != nil {
		return nil, fmt.Errorf("read environments of %s: %w", path, err)
	}
	for _, rec := range recs {
		if rec.Name == name {
			runs, err := store.History(name, n)
			if runs == nil {
				runs = []reconciler.Run{}
			}
			return runs, err
		}
	}
	return nil, fmt.Errorf("unknown environment %q in %s", name, path)
}

// writeRuns prints runs as a table, newest first.
func writeRuns(w io.Writer, runs []reconciler.Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tDURATION\tREVISION\tTRIGGER\tRESULT\tCHANGES\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.12s\t%s\t%s\t%d\t%s\n", r.ID, r.Start.Format(time.RFC3339), r.End.Sub(r.Start).Round(time.Millisecond), r.Revision.Commit, r.Trigger, r.Result, r.Changes, oneLine(r.Error))
	}
	return tw.Flush()
}
