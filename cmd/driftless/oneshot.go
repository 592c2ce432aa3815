package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// oneshotFlags are the flags shared by validate, plan and apply.
type oneshotFlags struct {
	root   string
	state  string
	output string
	level  string
}

func (o *oneshotFlags) register(fs *flag.FlagSet, withState bool) {
	fs.StringVar(&o.root, "root", "", "place every local host under this folder (a sandbox)")
	fs.StringVar(&o.output, "o", "text", "output: text or json")
	fs.StringVar(&o.level, "log-level", "warn", "log level")
	if withState {
		fs.StringVar(&o.state, "state", "", "state store file (default: a temporary one, forgotten afterwards)")
	}
}

// repoDir returns the declared repository folder: the one argument, or ".".
func repoDir(fs *flag.FlagSet) (string, error) {
	switch fs.NArg() {
	case 0:
		return ".", nil
	case 1:
		return fs.Arg(0), nil
	}
	return "", errors.New("expected at most one folder argument")
}

func runValidate(_ context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var o oneshotFlags
	o.register(fs, false)
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	dir, err := repoDir(fs)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless validate: %v\n", err)
		return 2
	}
	rev, err := config.LoadRevision(dir, config.LoadOptions{LocalRoot: o.root})
	if err != nil {
		fmt.Fprintln(env.stderr, err)
		return 1
	}
	hosts, resources := 0, 0
	for _, e := range rev.Environments {
		hosts += len(e.Hosts)
		for _, h := range e.Hosts {
			resources += len(h.Resources)
		}
	}
	fmt.Fprintf(env.stdout, "ok: %d environments, %d hosts, %d resources\n", len(rev.Environments), hosts, resources)
	return 0
}

// oneshot is a reconciler with a store of its own, for plan and apply.
type oneshot struct {
	rec    *reconciler.Reconciler
	store  *reconciler.BoltStore
	dialer *dialer
	tmp    string
}

func newOneshot(o oneshotFlags, log zerolog.Logger) (*oneshot, error) {
	s := &oneshot{}
	path := o.state
	if path == "" {
		tmp, err := os.MkdirTemp("", "driftless-oneshot-")
		if err != nil {
			return nil, fmt.Errorf("create temporary state: %w", err)
		}
		s.tmp = tmp
		path = filepath.Join(tmp, "state.db")
	}
	store, err := reconciler.OpenStore(path)
	if err != nil {
		s.close()
		return nil, err
	}
	s.store = store
	s.dialer = newDialer(config.SSH{Agent: true}, log)
	rec, err := reconciler.New(reconciler.Options{
		Store: store, Dialer: s.dialer, Drivers: targets.Drivers(), Logger: log, Version: version,
		Load: func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{LocalRoot: o.root})
		},
		Verifier: verifier(log),
	})
	if err != nil {
		s.close()
		return nil, err
	}
	s.rec = rec
	return s, nil
}

func (s *oneshot) close() {
	if s.rec != nil {
		_ = s.rec.Close()
	}
	if s.dialer != nil {
		_ = s.dialer.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}

func runPlan(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var o oneshotFlags
	o.register(fs, true)
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when nothing would change, 2 when something would, 1 on errors")
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	plans, err := planDir(ctx, env, o, fs)
	if err != nil {
		fmt.Fprintln(env.stderr, err)
		return 1
	}
	if o.output == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(plans)
	} else {
		writePlans(env.stdout, plans)
	}
	changes, failed := planCounts(plans)
	switch {
	case failed > 0:
		return 1
	case *detailed && changes > 0:
		return 2
	}
	return 0
}

func planDir(ctx context.Context, env *cliEnv, o oneshotFlags, fs *flag.FlagSet) ([]*reconciler.Plan, error) {
	dir, err := repoDir(fs)
	if err != nil {
		return nil, err
	}
	log, err := newLogger(env.stderr, env.isTerminal, o.level)
	if err != nil {
		return nil, err
	}
	s, err := newOneshot(o, log)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rev, err := sources.FolderRevision("cli", dir)
	if err != nil {
		return nil, err
	}
	return s.rec.PlanRevision(ctx, rev)
}

func runApply(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var o oneshotFlags
	o.register(fs, true)
	if err := parseArgs(fs, args); err != nil {
		return 2
	}
	dir, err := repoDir(fs)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless apply: %v\n", err)
		return 2
	}
	log, err := newLogger(env.stderr, env.isTerminal, o.level)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless apply: %v\n", err)
		return 2
	}
	s, err := newOneshot(o, log)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless apply: %v\n", err)
		return 1
	}
	defer s.close()
	rev, err := sources.FolderRevision("cli", dir)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless apply: %v\n", err)
		return 1
	}
	runs, err := s.rec.ApplyRevision(ctx, rev)
	if o.output == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(runs)
	} else {
		for _, r := range runs {
			fmt.Fprintf(env.stdout, "%s: %s, %d changes (%s)\n", r.Environment, r.Result, r.Changes, r.End.Sub(r.Start).Round(1e6))
			if r.Error != "" {
				fmt.Fprintf(env.stdout, "  error: %s\n", r.Error)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(env.stderr, err)
		return 1
	}
	return 0
}
