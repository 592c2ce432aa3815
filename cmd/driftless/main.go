// Command driftless is a GitOps reconciler daemon for machines that are not
// Kubernetes. main only wires: each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// cliEnv is what every subcommand is handed instead of globals.
type cliEnv struct {
	// stdin is what `driftless agent` reads its requests from.
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// isTerminal says whether stderr is a terminal (console logs, live progress).
	isTerminal bool
}

// exitCode ends a command with a code once the command has printed all it
// had to say (validate's errors, plan's --detailed-exitcode).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command line that cannot run as typed: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

const exitCodesHelp = `Exit codes: 0 success; 1 error (a failed run, an invalid repository, an
unreachable daemon); 2 bad usage (unknown command or flag, wrong arguments);
plan --detailed-exitcode also exits 2 when something would change.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, isTerminal: isTerminal(os.Stderr)}, os.Args[1:])
	stop()
	os.Exit(code)
}

// newRoot builds the command tree.
func newRoot(env *cliEnv) *cobra.Command {
	root := &cobra.Command{
		Use:   "driftless COMMAND",
		Short: "GitOps for machines that are not Kubernetes",
		Long: `driftless keeps servers and VMs as a Git repository declares them: files,
packages, systemd services, artifacts, addresses, routes and firewall rules.
It runs as a daemon (serve), once from a folder (validate, plan, apply), and
talks to a running daemon (status, history, sync, rollback, approve, reject).

` + exitCodesHelp,
		Example: `  driftless demo                     # the whole loop on the bundled example
  driftless validate ./infra         # check a repository
  driftless plan --sandbox-root /tmp/sb ./infra
  driftless serve --config /etc/driftless/driftless.yaml
  driftless status -o json`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("driftless {{.Version}}\n")
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		serveCmd(env), validateCmd(env), planCmd(env), applyCmd(env),
		statusCmd(env), historyCmd(env), syncCmd(env), rollbackCmd(env),
		approveCmd(env), rejectCmd(env), demoCmd(env), versionCmd(env), agentCmd(env),
	)
	// pflag's notes (a deprecated flag used) go to stderr, never into
	// the data a command prints on stdout.
	for _, c := range root.Commands() {
		c.Flags().SetOutput(env.stderr)
	}
	return root
}

// dispatch runs one command line and returns its exit code. Errors are
// printed here, once, prefixed with the command that failed.
func dispatch(ctx context.Context, env *cliEnv, args []string) int {
	root := newRoot(env)
	root.SetArgs(longFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	var code exitCode
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage):
		fmt.Fprintf(env.stderr, "%s: %v\nusage: %s\nRun '%s --help' for more.\n", cmd.CommandPath(), usage.err, cmd.UseLine(), cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(env.stderr, "%s: %v\n", cmd.CommandPath(), err)
	return 1
}

// longFlags accepts the single-dash long flags of earlier versions
// (-root, -token-file=F): a single-dash word that does not start with one
// of the command's one-letter flags (-o json, -n3) is rewritten to its
// double-dash spelling, the one the help and docs use, so that it works
// or is refused by its name. Arguments after "--" are left alone.
func longFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	flags := pflag.NewFlagSet("all", pflag.ContinueOnError)
	flags.AddFlagSet(cmd.Flags())
	flags.AddFlagSet(cmd.InheritedFlags())
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		if flags.ShorthandLookup(a[1:2]) == nil {
			out[i] = "-" + a
		}
	}
	return out
}

func versionCmd(env *cliEnv) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the version",
		Args:    noArgs,
		Example: "  driftless version\n  driftless --version",
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(env.stdout, "driftless %s\n", version)
			return nil
		},
	}
}

// usageArgs turns an argument check's error into a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// The argument checks of the commands, as usage errors.
func noArgs(c *cobra.Command, args []string) error { return usageArgs(cobra.NoArgs)(c, args) }
func oneArg(c *cobra.Command, args []string) error { return usageArgs(cobra.ExactArgs(1))(c, args) }
func atMostOne(c *cobra.Command, args []string) error {
	return usageArgs(cobra.MaximumNArgs(1))(c, args)
}
