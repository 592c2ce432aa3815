package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/sources"
)

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	cfgPath := fs.String("config", "/etc/driftless/driftless.yaml", "the daemon's configuration file")
	listen := fs.String("listen", "", "override the configuration's listen address")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	sandbox := fs.String("sandbox-root", "", "place every local host under this folder instead of / (to try a repository out safely)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(env.stderr, env.isTerminal, *level)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless serve: %v\n", err)
		return 2
	}
	cfg, err := config.LoadDaemon(*cfgPath)
	if err != nil {
		fmt.Fprintf(env.stderr, "driftless serve: %v\n", err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if err := serve(ctx, cfg, log, serveHooks{localRoot: *sandbox}); err != nil {
		log.Error().Err(err).Msg("daemon stopped")
		return 1
	}
	return 0
}

// serveHooks lets the demo watch a daemon it started.
type serveHooks struct {
	// localRoot sandboxes every local host under this folder.
	localRoot string
	// listening is called with the bound address once HTTP is served.
	listening func(addr string)
}

// serve runs the daemon until ctx ends: sources feed revisions to the
// reconciler; HTTP serves hooks, metrics, health, the API and the status page.
func serve(ctx context.Context, cfg *config.Daemon, log zerolog.Logger, hooks serveHooks) (err error) {
	d, err := buildDaemon(cfg, log, hooks.localRoot)
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
	srv := &http.Server{Handler: d.mux(ctx, ready.Load), ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	errc := make(chan error, 2+len(d.sources))
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
				select {
				case revs <- rev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
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
	log.Info().Str("listen", ln.Addr().String()).Int("sources", len(d.sources)).Str("version", version).Msg("driftless started")
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
