package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/driftless/driftless/reconciler/store"
)

func historyCmd(env *cliEnv) *cobra.Command {
	var cf clientFlags
	var n int
	var state string
	c := &cobra.Command{
		Use:   "history [flags] ENVIRONMENT",
		Short: "show an environment's runs (from a running daemon, or a state store)",
		Long: `Show the last runs of ENVIRONMENT, newest first: when, how long, which
revision, what triggered it, the result and the error. Asks a running daemon,
or reads a state store file with --state when no daemon runs.`,
		Example: `  driftless history prod
  driftless history prod -n 5 -o json
  driftless history prod --state /var/lib/driftless/state.db`,
		Args: oneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if state != "" {
				return clientRun(env, &cf, func(*apiClient) ([]byte, error) {
					runs, err := storeHistory(state, args[0], n)
					if err != nil {
						return nil, err
					}
					return nil, printData(env.stdout, cf.output, runs, func() error { return writeRuns(env.stdout, runs) })
				})
			}
			return clientRun(env, &cf, func(cl *apiClient) ([]byte, error) {
				var runs []store.Run
				raw, err := cl.do(c.Context(), http.MethodGet, envPath(args[0])+"/history?limit="+strconv.Itoa(n), nil, &runs)
				if err != nil || cf.output != "text" {
					return raw, err
				}
				return nil, writeRuns(env.stdout, runs)
			})
		},
	}
	cf.register(c.Flags(), false)
	c.Flags().IntVarP(&n, "limit", "n", 20, "how many runs")
	c.Flags().StringVar(&state, "state", "", "read a state store file instead of asking a daemon (the daemon must be stopped: it locks the file)")
	return c
}

// storeHistory reads an environment's runs from a state store file, for
// when no daemon runs (after a crash, or on a copy of the file).
func storeHistory(path, name string, n int) ([]store.Run, error) {
	if n <= 0 {
		return nil, fmt.Errorf("-n must be a positive integer, got %d", n)
	}
	st, err := os.Stat(path)
	if err != nil {
		// Opening would create an empty store: say the file is missing instead.
		return nil, fmt.Errorf("read state store: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("read state store: %s is a folder; give the store file in it (%s)", path, filepath.Join(path, "state.db"))
	}
	db, err := store.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (is a daemon using it? ask it with --addr instead)", err)
	}
	defer db.Close()
	recs, err := db.Envs()
	if err != nil {
		return nil, fmt.Errorf("read environments of %s: %w", path, err)
	}
	for _, rec := range recs {
		if rec.Name == name {
			runs, err := db.History(name, n)
			if runs == nil {
				runs = []store.Run{}
			}
			return runs, err
		}
	}
	return nil, fmt.Errorf("unknown environment %q in %s", name, path)
}

// writeRuns prints runs as a table, newest first.
func writeRuns(w io.Writer, runs []store.Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tDURATION\tREVISION\tTRIGGER\tRESULT\tCHANGES\tDECISION\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.12s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Start.Format(time.RFC3339), r.End.Sub(r.Start).Round(time.Millisecond),
			r.Revision.Commit, r.Trigger, r.Result, r.Changes, decisionOf(r), oneLine(r.Error))
	}
	return tw.Flush()
}

// decisionOf says who let a run's revision through its approval gate (or
// rejected it) and when, and whether a sync forced a closed deploy window;
// "-" for neither.
func decisionOf(r store.Run) string {
	var parts []string
	if d := r.Decision; d != nil {
		what := "approved"
		if !d.Approved {
			what = "rejected"
		}
		parts = append(parts, fmt.Sprintf("%s by %s at %s", what, d.By, d.At.UTC().Format(time.RFC3339)))
	}
	if r.Forced {
		parts = append(parts, "forced through a closed window")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
