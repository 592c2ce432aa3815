package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/inventory"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/targets"
)

// oneshotFlags are the flags shared by validate, plan and apply.
type oneshotFlags struct {
	root     string
	state    string
	output   string
	level    string
	progress string
	ssh      sshFlags
	// ageKeys are age identity files decrypting the repository's secrets.
	ageKeys []string
}

func (o *oneshotFlags) register(fs *pflag.FlagSet, withState bool) {
	fs.StringVar(&o.root, "sandbox-root", "", "place every local host under this folder, in ROOT/HOST, instead of / (to try a repository out safely)")
	// The earlier name, kept working; using it prints the new one.
	fs.StringVar(&o.root, "root", "", "")
	_ = fs.MarkDeprecated("root", "use --sandbox-root")
	outputFlag(fs, &o.output)
	// The result and the error say what happened; the daemon's log lines
	// would say it again, so they are off unless asked for.
	fs.StringVar(&o.level, "log-level", "disabled", "log level: debug, info, warn, error, or disabled")
	fs.StringArrayVar(&o.ageKeys, "age-key-file", nil, "age identity file decrypting the repository's SOPS and age files (repeatable; adds to secrets.age_key_files of --config)")
	if withState {
		fs.StringVar(&o.state, "state", "", "state store file (default: a temporary one, forgotten afterwards)")
		o.ssh.register(fs)
	} else {
		fs.StringVar(&o.ssh.config, "config", "", "read secrets.age_key_files from this daemon configuration file")
	}
}

// sshFlags are how plan and apply reach SSH hosts: the daemon's own
// settings (the ssh section of its configuration file), each of which a
// flag overrides.
type sshFlags struct {
	config     string
	keyFile    string
	knownHosts string
	user       string
	agent      bool
}

func (f *sshFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "read the SSH settings from this daemon configuration file (its ssh section)")
	fs.StringVar(&f.keyFile, "ssh-key", "", "private key file to log in to SSH hosts with")
	fs.StringVar(&f.knownHosts, "ssh-known-hosts", "", "known_hosts file checking the hosts' keys (default: ~/.ssh/known_hosts)")
	fs.StringVar(&f.user, "ssh-user", "", "SSH user for hosts that name none (default: root)")
	fs.BoolVar(&f.agent, "ssh-agent", false, "also offer the keys of the SSH agent at SSH_AUTH_SOCK")
}

// settings returns the SSH settings: the configuration file's, then the flags'.
func (f sshFlags) settings() (config.SSH, config.Agent, error) {
	var s config.SSH
	var ag config.Agent
	if f.config != "" {
		cfg, err := config.LoadDaemon(f.config)
		if err != nil {
			return s, ag, err
		}
		s, ag = cfg.SSH, cfg.Agent
	}
	if f.keyFile != "" {
		s.KeyFile = f.keyFile
	}
	if f.knownHosts != "" {
		s.KnownHosts = f.knownHosts
	}
	if f.user != "" {
		s.User = f.user
	}
	s.Agent = s.Agent || f.agent
	return s, ag, nil
}

// validation is validate's report, for -o json and yaml.
type validation struct {
	Valid        bool              `json:"valid"`
	Environments int               `json:"environments"`
	Hosts        int               `json:"hosts"`
	Resources    int               `json:"resources"`
	Errors       []validationError `json:"errors"`
	// Undecrypted lists where encrypted files are used whose decryption
	// was not checked, for want of an identity.
	Undecrypted []string `json:"undecrypted,omitempty"`
}

// validationError is one error of a repository, at its position.
type validationError struct {
	config.Position
	Message string `json:"message"`
}

// repoDir returns the declared repository folder: the argument, or ".".
func repoDir(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}

// identities reads the age identities of --age-key-file and, with
// --config, of the daemon configuration's secrets.age_key_files.
func (o oneshotFlags) identities() (*secrets.Identities, error) {
	files := o.ageKeys
	if o.ssh.config != "" {
		cfg, err := config.LoadDaemon(o.ssh.config)
		if err != nil {
			return nil, err
		}
		files = append(append([]string(nil), cfg.Secrets.AgeKeyFiles...), files...)
	}
	return secrets.LoadIdentities(files)
}

func validateCmd(env *cliEnv) *cobra.Command {
	var o oneshotFlags
	c := &cobra.Command{
		Use:   "validate [flags] [DIR]",
		Short: "validate a declared repository; print every error with its position",
		Long: `Validate the declared repository in DIR (default: the current folder):
every file is parsed and checked, and every error is printed with its file,
line and column. Nothing is contacted, nothing is changed.`,
		Example: "  driftless validate\n  driftless validate ./infra",
		Args:    atMostOne,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkOutput(&o.output); err != nil {
				return err
			}
			res := validation{Valid: true, Errors: []validationError{}}
			ids, err := o.identities()
			if err != nil {
				return err
			}
			rev, err := config.LoadRevision(repoDir(args), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: o.root, Identities: ids, SkipDecrypt: ids.Len() == 0})
			if err != nil {
				var list config.ErrorList
				if !errors.As(err, &list) {
					list = config.ErrorList{{Pos: config.Position{File: repoDir(args)}, Msg: err.Error()}}
				}
				res.Valid = false
				for _, e := range list {
					res.Errors = append(res.Errors, validationError{e.Pos, e.Msg})
				}
			} else {
				res.Environments = len(rev.Environments)
				for _, p := range rev.Undecrypted {
					res.Undecrypted = append(res.Undecrypted, p.String())
				}
				for _, e := range rev.Environments {
					res.Hosts += len(e.Hosts)
					for _, h := range e.Hosts {
						res.Resources += len(h.Resources)
					}
				}
			}
			if err := printData(env.stdout, o.output, res, func() error {
				if err != nil {
					fmt.Fprintln(env.stderr, err)
					return nil
				}
				fmt.Fprintf(env.stdout, "ok: %d environments, %d hosts, %d resources\n", res.Environments, res.Hosts, res.Resources)
				for _, p := range res.Undecrypted {
					fmt.Fprintf(env.stdout, "%s: encrypted file: decryption was not checked (no age identity: give --age-key-file or --config)\n", p)
				}
				return nil
			}); err != nil {
				return err
			}
			if !res.Valid {
				return exitCode(1)
			}
			return nil
		},
	}
	o.register(c.Flags(), false)
	return c
}

// oneshot is a reconciler with a store of its own, for plan and apply.
type oneshot struct {
	rec    *reconciler.Reconciler
	store  *store.BoltStore
	dialer *dialer
	tmp    string
}

// newOneshot builds the reconciler of plan and apply; progress receives
// its progress events (nil: none).
func newOneshot(o oneshotFlags, log zerolog.Logger, progress status.Progress) (*oneshot, error) {
	sshCfg, agentCfg, err := o.ssh.settings()
	if err != nil {
		return nil, err
	}
	ids, err := o.identities()
	if err != nil {
		return nil, err
	}
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
	store, err := store.Open(path)
	if err != nil {
		s.close()
		return nil, err
	}
	s.store = store
	if s.dialer, err = newDialer(sshCfg, agentCfg, log); err != nil {
		s.close()
		return nil, err
	}
	if sshCfg.KeyFile == "" && !sshCfg.Agent {
		s.dialer.hint = "give --ssh-key FILE, --ssh-agent, or --config with the daemon's configuration"
	}
	// Inventories keep their results beside the store (the daemon's state
	// folder with --state): apply runs them, plan reads the last result.
	invDir := filepath.Join(filepath.Dir(path), "inventory")
	loader := func(run bool) reconciler.Loader {
		inv := &inventory.Source{Dir: invDir, Run: run, Logger: log}
		return func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: o.root, Identities: ids, Inventory: inv})
		}
	}
	rec, err := reconciler.New(reconciler.Options{
		Store: store, Dialer: s.dialer, Drivers: targets.Drivers(), Logger: log, Version: version,
		Load: loader(true), LoadUntrusted: loader(false),
		Verifier: verifier(log),
		Progress: progress,
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

func planCmd(env *cliEnv) *cobra.Command {
	var o oneshotFlags
	var detailed bool
	c := &cobra.Command{
		Use:   "plan [flags] [DIR]",
		Short: "show what applying a declared repository would change",
		Long: `Plan the declared repository in DIR (default: the current folder): for every
environment and host, list the resources that would change, with diffs.
Nothing is changed.

With --detailed-exitcode, plan exits 0 when nothing would change, 2 when
something would and 1 on errors.`,
		Example: `  driftless plan ./infra
  driftless plan --sandbox-root /tmp/sandbox --detailed-exitcode ./infra
  driftless plan -o json ./infra`,
		Args: atMostOne,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(&o.output); err != nil {
				return err
			}
			plans, err := planDir(c.Context(), env, o, repoDir(args))
			if err != nil {
				return err
			}
			if err := printData(env.stdout, o.output, plans, func() error { writePlans(env.stdout, plans); return nil }); err != nil {
				return err
			}
			changes, failed := planCounts(plans)
			switch {
			case failed > 0:
				return exitCode(1)
			case detailed && changes > 0:
				return exitCode(2)
			}
			return nil
		},
	}
	o.register(c.Flags(), true)
	c.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 0 when nothing would change, 2 when something would, 1 on errors")
	return c
}

func planDir(ctx context.Context, env *cliEnv, o oneshotFlags, dir string) ([]*status.Plan, error) {
	log, err := newLogger(env.stderr, env.isTerminal, o.level)
	if err != nil {
		return nil, usageError{err}
	}
	s, err := newOneshot(o, log, nil)
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

func applyCmd(env *cliEnv) *cobra.Command {
	var o oneshotFlags
	c := &cobra.Command{
		Use:   "apply [flags] [DIR]",
		Short: "apply a declared repository once",
		Long: `Apply the declared repository in DIR (default: the current folder) once, as
the daemon would: every environment, host by host, with its checks.

Progress goes to stderr as it happens, per batch and host: observe,
snapshot, apply, verify (each check's attempts), rollback. On a terminal it
is a live table with a row per host; otherwise one line per event
(--progress plain), such as:

  prod batch 1/2 web-1: apply 3 changes
  prod batch 1/2 web-1: check "healthz" attempt 2/10 failed, retrying`,
		Example: `  driftless apply ./infra
  driftless apply --sandbox-root /tmp/sandbox ./infra
  driftless apply --progress none -o json ./infra`,
		Args: atMostOne,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(&o.output); err != nil {
				return err
			}
			log, err := newLogger(env.stderr, env.isTerminal, o.level)
			if err != nil {
				return usageError{err}
			}
			view, err := newProgressView(env.stderr, o.progress, env.isTerminal)
			if err != nil {
				return err
			}
			s, err := newOneshot(o, log, func(e status.Event) { view.show(e) })
			if err != nil {
				return err
			}
			defer s.close()
			rev, err := sources.FolderRevision("cli", repoDir(args))
			if err != nil {
				return err
			}
			runs, err := s.rec.ApplyRevision(c.Context(), rev)
			if perr := printData(env.stdout, o.output, runs, func() error {
				// A failed run's error is printed once, on stderr, by dispatch.
				for _, r := range runs {
					fmt.Fprintf(env.stdout, "%s: %s, %d changes (%s)\n", r.Environment, r.Result, r.Changes, r.End.Sub(r.Start).Round(time.Millisecond))
				}
				return nil
			}); perr != nil {
				return perr
			}
			return err
		},
	}
	o.register(c.Flags(), true)
	progressFlag(c.Flags(), &o.progress)
	return c
}
