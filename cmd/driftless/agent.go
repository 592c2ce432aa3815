package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
)

// agentCmd is driftless on a host: the daemon starts it over SSH and
// speaks to it on its standard input and output (package agent); with
// --pull it follows the sources itself and reconciles this host alone.
func agentCmd(env *cliEnv) *cobra.Command {
	var pull bool
	var cfgPath, listen, level, sandbox string
	c := &cobra.Command{
		Use:   "agent",
		Short: "serve the daemon's requests on standard input and output, or (--pull) reconcile this host from Git",
		Long: `agent observes resources natively on the host it runs on, for a daemon
that started it over SSH: one JSON request per line on standard input, one
answer per line on standard output, until standard input ends. It listens
on nothing else. The daemon copies it to the host and starts it itself;
nobody needs to run it by hand.

With --pull, agent runs as a service on the host (systemd/driftless-agent.service):
it follows the configuration's sources itself and applies, on this host
alone, the resources of every environment that names it (pull.host in the
configuration, else the machine's hostname), with the daemon's drift loop,
verification, rollback, state store, /metrics and API; with pull.report it
sends this host's state to a central daemon.`,
		Args: noArgs,
		Example: `  driftless agent   # as the daemon starts it, over an SSH session
  driftless agent --pull --config /etc/driftless/agent.yaml`,
		RunE: func(c *cobra.Command, _ []string) error {
			if !pull {
				for _, f := range []string{"config", "listen", "log-level", "sandbox-root"} {
					if c.Flags().Changed(f) {
						return usageError{fmt.Errorf("--%s is a pull mode flag: add --pull", f)}
					}
				}
				return agent.Serve(c.Context(), env.stdin, env.stdout, version)
			}
			log, err := newLogger(env.stderr, env.isTerminal, level)
			if err != nil {
				return usageError{err}
			}
			cfg, err := config.LoadAgent(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			host := cfg.Pull.Host
			if host == "" {
				if host, err = os.Hostname(); err != nil {
					return fmt.Errorf("pull mode: this host's name: %w (set pull.host)", err)
				}
			}
			if err := serve(c.Context(), cfg, log, serveHooks{localRoot: sandbox, pullHost: host}); err != nil {
				log.Error().Err(err).Msg("pull agent stopped")
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&pull, "pull", false, "pull mode: follow the sources and reconcile this host alone")
	c.Flags().StringVar(&cfgPath, "config", "/etc/driftless/agent.yaml", "pull mode: the configuration file (driftless.yaml's format, with a pull section)")
	c.Flags().StringVar(&listen, "listen", "", "pull mode: override the configuration's listen address (/metrics, health, API)")
	c.Flags().StringVar(&level, "log-level", "info", "pull mode: log level: debug, info, warn, error")
	c.Flags().StringVar(&sandbox, "sandbox-root", "", "pull mode: place every managed path under this folder instead of / (to try it out safely)")
	return c
}
