package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
)

// apiClient talks to a running daemon's HTTP API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags are the flags of the commands that talk to a daemon.
type clientFlags struct {
	addr      string
	output    string
	tokenFile string
}

func (c *clientFlags) register(fs *pflag.FlagSet, withToken bool) {
	fs.StringVar(&c.addr, "addr", "http://127.0.0.1:8080", "the daemon's HTTP address")
	outputFlag(fs, &c.output)
	if withToken {
		fs.StringVar(&c.tokenFile, "token-file", "", "file holding the API bearer token (or DRIFTLESS_API_TOKEN_FILE)")
	}
}

func (c clientFlags) client() (*apiClient, error) {
	cl := &apiClient{base: strings.TrimRight(c.addr, "/"), http: &http.Client{Timeout: 5 * time.Minute}}
	file := c.tokenFile
	if file == "" {
		file = os.Getenv("DRIFTLESS_API_TOKEN_FILE")
	}
	if file != "" {
		tok, err := config.Secret{File: file}.Read()
		if err != nil {
			return nil, err
		}
		cl.token = string(tok)
	}
	return cl, nil
}

// do sends a request and decodes a JSON answer into out; the raw body is
// returned for -o json.
func (c *apiClient) do(ctx context.Context, method, path string, body any, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("no daemon answers at %s (is it running? give its address with --addr): %w", c.base, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return data, nil
}

func envPath(name string) string { return "/api/v1/environments/" + url.PathEscape(name) }

func statusCmd(env *cliEnv) *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "status [flags] [ENVIRONMENT]",
		Short: "show the environments of a running daemon",
		Long: `Show every environment of a running daemon, or only ENVIRONMENT: its applied
revision, state, drift, last result and hosts.`,
		Example: `  driftless status
  driftless status prod -o json
  driftless status --addr http://10.0.0.5:8080`,
		Args: atMostOne,
		RunE: func(c *cobra.Command, args []string) error {
			return clientRun(env, &cf, func(cl *apiClient) ([]byte, error) {
				var list []status.EnvStatus
				var raw []byte
				var err error
				if len(args) > 0 {
					var one status.EnvStatus
					raw, err = cl.do(c.Context(), http.MethodGet, envPath(args[0]), nil, &one)
					list = []status.EnvStatus{one}
				} else {
					raw, err = cl.do(c.Context(), http.MethodGet, "/api/v1/environments", nil, &list)
				}
				if err != nil || cf.output != "text" {
					return raw, err
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				// The columns are named after the fields of -o json.
				fmt.Fprintln(tw, "NAME\tAPPLIED\tSTATE\tDRIFT_RESOURCES\tLAST_RESULT\tLAST_RUN\tHOSTS_UP")
				for _, e := range list {
					up := 0
					for _, h := range e.Hosts {
						if h.Up {
							up++
						}
					}
					fmt.Fprintf(tw, "%s\t%.12s\t%s\t%d\t%s\t%s\t%d/%d\n", e.Name, orDash(e.Applied), e.State, e.DriftResources, orDash(e.LastResult), ago(e.LastRun), up, len(e.Hosts))
				}
				if err := tw.Flush(); err != nil {
					return nil, err
				}
				// What each environment holds at its gates, and a head its
				// source refused (which does not change the environment's
				// state: its hosts stay on the applied revision), under the table.
				for _, e := range list {
					if e.Refused != "" {
						fmt.Fprintf(env.stdout, "%s: %s\n", e.Name, e.Refused)
					}
					if g := e.Gate; g != nil {
						fmt.Fprintf(env.stdout, "%s: revision %.12s %s: %s\n", e.Name, orDash(g.Revision.Commit), g.State, oneLine(g.Reason))
					}
				}
				return nil, nil
			})
		},
	}
	cf.register(c.Flags(), false)
	return c
}

func syncCmd(env *cliEnv) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "sync [flags] ENVIRONMENT",
		Short: "ask a running daemon to reconcile an environment now",
		Long: `Ask a running daemon to reconcile ENVIRONMENT now, at its applied revision,
and print the environment's state once the run ended. Needs a token with the
sync scope. While a deploy window holds a revision back the sync is refused
unless --force is given (recorded in history as forced).`,
		Example: `  driftless sync prod --token-file /etc/driftless/api-token
  DRIFTLESS_API_TOKEN_FILE=/etc/driftless/api-token driftless sync prod
  driftless sync prod --force`,
	}
	c.Flags().BoolVar(&force, "force", false, "go through a closed deploy window (recorded in history as forced)")
	return clientPost(env, c, func() any { return map[string]bool{"force": force} })
}

func approveCmd(env *cliEnv) *cobra.Command {
	return decideCmd(env, &cobra.Command{
		Use:   "approve [flags] ENVIRONMENT REVISION",
		Short: "approve the revision an environment holds at its approval gate",
		Long: `Approve REVISION (a commit, 7 characters at least), the revision ENVIRONMENT
holds at its approval gate: it is applied once its other gates are open. The
approval counts for that commit only. Needs a token with the approve scope.`,
		Example: `  driftless approve prod 3f2a9c1 --token-file /etc/driftless/approver-token`,
	})
}

func rejectCmd(env *cliEnv) *cobra.Command {
	return decideCmd(env, &cobra.Command{
		Use:   "reject [flags] ENVIRONMENT REVISION",
		Short: "reject the revision an environment holds at its approval gate",
		Long: `Reject REVISION, the revision ENVIRONMENT holds at its approval gate: it is
never applied, and the rejection is recorded in history. Needs a token with
the approve scope.`,
		Example: `  driftless reject prod 3f2a9c1 --token-file /etc/driftless/approver-token`,
	})
}

// decideCmd completes approve and reject: a POST naming the revision.
func decideCmd(env *cliEnv, c *cobra.Command) *cobra.Command {
	var cf clientFlags
	verb := c.Name()
	c.Args = usageArgs(cobra.ExactArgs(2))
	c.RunE = func(c *cobra.Command, args []string) error {
		return clientRun(env, &cf, func(cl *apiClient) ([]byte, error) {
			var ans struct {
				Decision store.Decision `json:"decision"`
			}
			raw, err := cl.do(c.Context(), http.MethodPost, envPath(args[0])+"/"+verb, map[string]string{"revision": args[1]}, &ans)
			if err != nil || cf.output != "text" {
				return raw, err
			}
			what := "rejected"
			if ans.Decision.Approved {
				what = "approved"
			}
			fmt.Fprintf(env.stdout, "%s %.12s %s by %s\n", ans.Decision.Environment, ans.Decision.Commit, what, ans.Decision.By)
			return nil, nil
		})
	}
	cf.register(c.Flags(), true)
	return c
}

func rollbackCmd(env *cliEnv) *cobra.Command {
	var to string
	c := &cobra.Command{
		Use:   "rollback [flags] ENVIRONMENT",
		Short: "ask a running daemon to roll an environment back",
		Long: `Ask a running daemon to roll ENVIRONMENT back to an earlier revision (default:
the last good one before the applied one) and hold it there. Needs the API token.`,
		Example: `  driftless rollback prod --token-file /etc/driftless/api-token
  driftless rollback prod --to 3f2a9c1`,
	}
	c.Flags().StringVar(&to, "to", "", "the commit to roll back to (default: the last good revision before the applied one)")
	return clientPost(env, c, func() any { return map[string]string{"to": to} })
}

// clientPost completes sync and rollback: a POST with the bearer token,
// which answers once the run ended; with --wait, the run's progress is
// shown meanwhile.
func clientPost(env *cliEnv, c *cobra.Command, body func() any) *cobra.Command {
	var cf clientFlags
	var wait bool
	var progress string
	verb := c.Name()
	c.Args = oneArg
	c.Long += `

With --wait, the run's progress is shown on stderr while the command waits
for it, per batch and host (observe, snapshot, apply, verify with each
check's attempts, rollback): a live table on a terminal, otherwise one line
per event (see apply --help).`
	c.Example += "\n  driftless " + verb + " prod --wait --progress plain"
	c.RunE = func(c *cobra.Command, args []string) error {
		view, err := newProgressView(env.stderr, progress, env.isTerminal)
		if err != nil {
			return err
		}
		return clientRun(env, &cf, func(cl *apiClient) ([]byte, error) {
			var b any
			if body != nil {
				b = body()
			}
			var st status.EnvStatus
			post := func() ([]byte, error) {
				return cl.do(c.Context(), http.MethodPost, envPath(args[0])+"/"+verb, b, &st)
			}
			if wait {
				post = cl.follow(c.Context(), env, args[0], view, post)
			}
			raw, err := post()
			if err != nil || cf.output != "text" {
				return raw, err
			}
			fmt.Fprintf(env.stdout, "%s %s: state %s, applied %.12s, last_result %s\n", verb, st.Name, st.State, st.Applied, orDash(st.LastResult))
			return nil, nil
		})
	}
	cf.register(c.Flags(), true)
	c.Flags().BoolVar(&wait, "wait", false, "show the run's progress on stderr while waiting for it")
	progressFlag(c.Flags(), &progress)
	return c
}

// clientRun builds the client, runs fn and prints the JSON answer fn
// returns, in the -o format.
func clientRun(env *cliEnv, cf *clientFlags, fn func(*apiClient) ([]byte, error)) error {
	if err := checkOutput(&cf.output); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	raw, err := fn(c)
	if err != nil {
		return err
	}
	if raw != nil {
		return printJSON(env.stdout, cf.output, raw)
	}
	return nil
}

// orDash fills an empty table cell, so that every row has all its columns.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a joined, multi-line error on its table row.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
