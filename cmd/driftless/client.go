package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler"
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

func (c *clientFlags) register(fs *flag.FlagSet, withToken bool) {
	fs.StringVar(&c.addr, "addr", "http://127.0.0.1:8080", "the daemon's HTTP address")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
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

func runStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var cf clientFlags
	cf.register(fs, false)
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	return clientRun(env, cf, func(c *apiClient) ([]byte, error) {
		var list []reconciler.EnvStatus
		var raw []byte
		var err error
		if fs.NArg() > 0 {
			var one reconciler.EnvStatus
			raw, err = c.do(ctx, http.MethodGet, envPath(fs.Arg(0)), nil, &one)
			list = []reconciler.EnvStatus{one}
		} else {
			raw, err = c.do(ctx, http.MethodGet, "/api/v1/environments", nil, &list)
		}
		if err != nil || cf.output == "json" {
			return raw, err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENVIRONMENT\tREVISION\tSTATE\tDRIFT\tLAST RESULT\tLAST RUN\tHOSTS UP")
		for _, e := range list {
			up := 0
			for _, h := range e.Hosts {
				if h.Up {
					up++
				}
			}
			fmt.Fprintf(tw, "%s\t%.12s\t%s\t%d\t%s\t%s\t%d/%d\n", e.Name, orDash(e.Applied), e.State, e.DriftResources, orDash(e.LastResult), ago(e.LastRun), up, len(e.Hosts))
		}
		return nil, tw.Flush()
	})
}

func runSync(ctx context.Context, env *cliEnv, args []string) int {
	return clientPost(ctx, env, "sync", args, nil)
}

func runRollback(ctx context.Context, env *cliEnv, args []string) int {
	return clientPost(ctx, env, "rollback", args, func(fs *flag.FlagSet) func() any {
		to := fs.String("to", "", "the commit to roll back to (default: the last good revision before the applied one)")
		return func() any { return map[string]string{"to": *to} }
	})
}

// clientPost runs sync and rollback: a POST with the bearer token.
func clientPost(ctx context.Context, env *cliEnv, verb string, args []string, extra func(*flag.FlagSet) func() any) int {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var cf clientFlags
	cf.register(fs, true)
	var body func() any
	if extra != nil {
		body = extra(fs)
	}
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(env.stderr, "usage: driftless %s [flags] ENVIRONMENT\n", verb)
		return 2
	}
	return clientRun(env, cf, func(c *apiClient) ([]byte, error) {
		var b any
		if body != nil {
			b = body()
		}
		var st reconciler.EnvStatus
		raw, err := c.do(ctx, http.MethodPost, envPath(fs.Arg(0))+"/"+verb, b, &st)
		if err != nil || cf.output == "json" {
			return raw, err
		}
		fmt.Fprintf(env.stdout, "%s %s: %s, revision %.12s, last result %s\n", verb, st.Name, st.State, st.Applied, st.LastResult)
		return nil, nil
	})
}

// clientRun builds the client, runs fn and prints raw JSON when fn returns it.
func clientRun(env *cliEnv, cf clientFlags, fn func(*apiClient) ([]byte, error)) int {
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless: %v\n", err)
		return 1
	}
	raw, err := fn(c)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless: %v\n", err)
		return 1
	}
	if raw != nil {
		env.stdout.Write(raw)
		if !bytes.HasSuffix(raw, []byte("\n")) {
			fmt.Fprintln(env.stdout)
		}
	}
	return 0
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
