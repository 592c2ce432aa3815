// Command driftless is a GitOps reconciler daemon for machines that are not
// Kubernetes. main only wires: each subcommand lives in its own file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: its name, a one-line summary and its body.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) int
}

// cliEnv is what every subcommand is handed instead of globals.
type cliEnv struct {
	stdout io.Writer
	stderr io.Writer
	// isTerminal says whether stderr is a terminal (console logs).
	isTerminal bool
}

func commands() []command {
	return []command{
		{"serve", "run the daemon: watch sources, reconcile, serve hooks, API and metrics", runServe},
		{"validate", "validate a declared repository; print every error with its position", runValidate},
		{"plan", "show what applying a declared repository would change", runPlan},
		{"apply", "apply a declared repository once", runApply},
		{"status", "show the environments of a running daemon", runStatus},
		{"history", "show an environment's runs (from a running daemon, or a state store)", runHistory},
		{"sync", "ask a running daemon to reconcile an environment now", runSync},
		{"rollback", "ask a running daemon to roll an environment back", runRollback},
		{"demo", "run the whole loop on the bundled example in a temporary sandbox", runDemo},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, &cliEnv{stdout: os.Stdout, stderr: os.Stderr, isTerminal: isTerminal(os.Stderr)}, os.Args[1:])
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "driftless: unknown command %q\n\n", args[0])
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: driftless <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'driftless <command> -h' for a command's flags.")
}

func runVersion(_ context.Context, env *cliEnv, _ []string) int {
	fmt.Fprintf(env.stdout, "driftless %s\n", version)
	return 0
}

// parseArgs parses flags wherever they stand among the arguments, so
// `driftless rollback staging --to abc` means what it says. Go's flag
// package alone stops at the first argument that is not a flag.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			// Everything after "--" is an argument, even when it starts with "-".
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parsing the arguments alone sets fs.Args() to them.
	return fs.Parse(append([]string{"--"}, positional...))
}
