package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/driftless/driftless/agent"
)

// agentCmd is driftless on a host: the daemon starts it over SSH and
// speaks to it on its standard input and output (package agent).
func agentCmd(env *cliEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "serve the daemon's requests on standard input and output (started by the daemon over SSH)",
		Long: `agent observes resources natively on the host it runs on, for a daemon
that started it over SSH: one JSON request per line on standard input, one
answer per line on standard output, until standard input ends. It listens
on nothing else. The daemon copies it to the host and starts it itself;
nobody needs to run it by hand.`,
		Args:    noArgs,
		Example: "  driftless agent   # as the daemon starts it, over an SSH session",
		RunE: func(c *cobra.Command, _ []string) error {
			return agent.Serve(c.Context(), os.Stdin, env.stdout, version)
		},
	}
}
