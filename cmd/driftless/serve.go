package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/httpserver"
	"github.com/driftless/driftless/sources"
)

func serveCmd(env *cliEnv) *cobra.Command {
	var cfgPath, listen, level, sandbox, pprofListen string
	c := &cobra.Command{
		Use:   "serve [flags]",
		Short: "run the daemon: watch sources, reconcile, serve hooks, API and metrics",
		Long: `Run the daemon: watch the configured sources, reconcile every environment
they declare, correct drift, and serve webhooks, the API, the status page,
health and metrics over HTTP.`,
		Example: `  driftless serve --config /etc/driftless/driftless.yaml
  driftless serve --config driftless.yaml --listen 127.0.0.1:8080 --sandbox-root /tmp/sandbox`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := newLogger(env.stderr, env.isTerminal, level)
			if err != nil {
				return usageError{err}
			}
			cfg, err := config.LoadDaemon(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if err := serve(c.Context(), cfg, log, serveHooks{localRoot: sandbox, pprofListen: pprofListen}); err != nil {
				log.Error().Err(err).Msg("daemon stopped")
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "/etc/driftless/driftless.yaml", "the daemon's configuration file")
	c.Flags().StringVar(&listen, "listen", "", "override the configuration's listen address")
	c.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	c.Flags().StringVar(&sandbox, "sandbox-root", "", "place every local host under this folder instead of / (to try a repository out safely)")
	c.Flags().StringVar(&pprofListen, "pprof-listen", "", "serve net/http/pprof on this separate address, such as 127.0.0.1:6060 (off when empty)")
	return c
}

// serveHooks are serve's settings that do not come from the configuration
// file; they also let the demo watch a daemon it started.
type serveHooks struct {
	// localRoot sandboxes every local host under this folder.
	localRoot string
	// pprofListen serves net/http/pprof on this address ("": off).
	pprofListen string
	// listening is called with the bound address once HTTP is served.
	listening func(addr string)
	// pullHost, when set, runs pull mode for this host (driftless agent --pull).
	pullHost string
}

// serve runs the daemon until ctx ends: sources feed revisions to the
// reconciler; HTTP serves hooks, metrics, health, the API and the status page.
func serve(ctx context.Context, cfg *config.Daemon, log zerolog.Logger, hooks serveHooks) (err error) {
	d, err := buildDaemon(cfg, log, hooks)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.close()) }()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var ready atomic.Bool
	ready.Store(len(d.sources) == 0)
	// In cluster mode a replica is ready only while it holds its lease.
	isReady := func() bool { return ready.Load() && (d.cluster == nil || d.cluster.Ready()) }
	srv, err := newHTTPServer(cfg.HTTP, d.mux(ctx, isReady), d.reg)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	if hooks.pprofListen != "" {
		if err := startPprof(ctx, hooks.pprofListen, log, &wg); err != nil {
			_ = ln.Close()
			return err
		}
	}
	errc := make(chan error, 3+len(d.sources))
	in := make(chan sources.Revision)
	revs := make(chan sources.Revision)
	for _, src := range d.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := src.Run(ctx, in); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("source %s: %w", src.Name(), err)
			}
		}()
	}
	// Forward revisions, noting when every source has produced its first:
	// until then the daemon is not ready.
	wg.Add(1)
	go func() {
		defer wg.Done()
		firstSeen := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case rev := <-in:
				firstSeen[rev.Source] = true
				if len(firstSeen) >= len(d.sources) {
					ready.Store(true)
				}
				if d.cluster != nil && !rev.Preview && rev.Refused == "" {
					// The other replicas fetch it now, not at their next poll.
					go d.cluster.PublishRevision(rev.Source, rev.Commit)
				}
				select {
				case revs <- rev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	if d.cluster != nil {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if err := d.cluster.Run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("cluster: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			d.cluster.RunHooks(ctx, d.relayed)
		}()
		go func() {
			defer wg.Done()
			d.operator.ServeRequests(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.rec.Run(ctx, revs); err != nil {
			errc <- fmt.Errorf("reconciler: %w", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	if r := cfg.Pull.Report; hooks.pullHost != "" && r != nil {
		rep := &agent.Reporter{URL: r.URL, Token: r.Token, Host: hooks.pullHost, Version: version,
			Interval: r.Interval.D(), States: d.rec.Environments, Logger: log}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Run(ctx)
		}()
	}
	log.Info().Str("listen", ln.Addr().String()).Int("sources", len(d.sources)).Str("version", version).Str("pull_host", hooks.pullHost).Msg("driftless started")
	if hooks.listening != nil {
		hooks.listening(ln.Addr().String())
	}
	notifySystemd(ctx, log, &wg)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	log.Info().Msg("driftless stopped")
	return err
}

// newHTTPServer bounds the daemon's HTTP server by cfg: webhooks and the
// API read small bodies and answer quickly; /metrics, the status page and
// the health checks keep the longer scrape limit for slow scrapers.
func newHTTPServer(cfg config.HTTP, h http.Handler, reg prometheus.Registerer) (*httpserver.Server, error) {
	small := httpserver.Limits{Read: cfg.BodyTimeout.D(), Write: cfg.WriteTimeout.D()}
	return httpserver.New(h, httpserver.Options{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.IdleTimeout.D(),
		Routes:            []httpserver.Route{{Prefix: "/hooks/", Limits: small}, {Prefix: "/api/", Limits: small}},
		Default:           httpserver.Limits{Read: cfg.ReadHeaderTimeout.D(), Write: cfg.ScrapeTimeout.D()},
		MaxConns:          cfg.MaxConnections,
		MaxConnsPerAddr:   cfg.MaxConnectionsPerAddress,
		Registerer:        reg,
	})
}

// notifySystemd tells systemd the daemon is ready and, when the unit has
// WatchdogSec, pings the watchdog at half its interval. Outside systemd
// both are no-ops.
func notifySystemd(ctx context.Context, log zerolog.Logger, wg *sync.WaitGroup) {
	if ok, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); err != nil {
		log.Warn().Err(err).Msg("sd_notify ready failed")
	} else if ok {
		log.Info().Msg("told systemd we are ready")
	}
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			}
		}
	}()
}
