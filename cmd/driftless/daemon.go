package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/cluster"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/inventory"
	"github.com/driftless/driftless/reconciler"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/feedback"
	"github.com/driftless/driftless/reconciler/notify"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/sources/webhook"
	"github.com/driftless/driftless/targets"
)

// daemon is every part of `driftless serve`, built from driftless.yaml.
type daemon struct {
	cfg   *config.Daemon
	log   zerolog.Logger
	reg   *prometheus.Registry
	store store.Store
	// etcd and cluster are set in cluster mode (a cluster section): the
	// store is then etcd's, shared by every replica.
	etcd    *clientv3.Client
	cluster *cluster.Cluster
	// operator, in cluster mode, is the API's reconciler: it sends
	// requests on to each environment's owner and names it.
	operator *cluster.Operator
	// relayed, in cluster mode, takes what other replicas relay: their
	// webhook events and the newest revision of each source.
	relayed cluster.Relayed
	dialer  *dialer
	rec     *reconciler.Reconciler
	sources []sources.Source
	hooks   *webhook.Handler
	// progress keeps the newest progress events of each environment for the API.
	progress *status.ProgressLog
	// localRoot sandboxes local hosts (the demo); empty in production.
	localRoot string
	// ids decrypt the repositories' SOPS and age files.
	ids *secrets.Identities
	// pullHost, in pull mode (driftless agent --pull), is this host's
	// name: each revision is narrowed to it, over the local transport.
	pullHost string
	// pulled keeps pull-mode hosts' reports for the API and status page.
	pulled *status.PulledHosts
}

// openStore opens the state store: the bbolt file of the state folder, or
// in cluster mode etcd's, shared by the replicas, with the membership
// that shares the environments out. Every replica seals journal entries
// with the same store.agekey, so that any of them can finish a rollout.
func (d *daemon) openStore() error {
	if d.cfg.Cluster == nil {
		st, err := store.Open(filepath.Join(d.cfg.StateDir, "state.db"))
		if err != nil {
			return err
		}
		d.store = st
		return nil
	}
	c := d.cfg.Cluster
	replica, err := c.ReplicaName()
	if err != nil {
		return err
	}
	if d.etcd, err = cluster.Dial(c); err != nil {
		return err
	}
	box, err := secrets.LoadBox(filepath.Join(d.cfg.StateDir, "store.agekey"))
	if err != nil {
		return fmt.Errorf("cluster mode: %w", err)
	}
	if d.store, err = store.OpenEtcd(store.EtcdOptions{Client: d.etcd, Prefix: c.Prefix, Box: box}); err != nil {
		return fmt.Errorf("cluster mode: %w", err)
	}
	d.cluster, err = cluster.New(cluster.Options{Client: d.etcd, Prefix: c.Prefix, Replica: replica, LeaseTTL: c.LeaseTTL.D(),
		// The reconciler is built before Run, which calls these, starts.
		Release: func(env string) { d.rec.Release(env) }, Changed: func() { d.rec.OwnershipChanged() },
		Logger: d.log.With().Str("replica", replica).Logger(), Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("cluster mode: %w", err)
	}
	return nil
}

// buildDaemon wires the parts. Nothing runs until run is called.
func buildDaemon(cfg *config.Daemon, log zerolog.Logger, hooks serveHooks) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry(), progress: status.NewProgressLog(0),
		localRoot: hooks.localRoot, pullHost: hooks.pullHost, pulled: status.NewPulledHosts(0)}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	if err := d.openStore(); err != nil {
		d.close()
		return nil, err
	}
	var err error
	if d.dialer, err = newDialer(cfg.SSH, cfg.Agent, log); err != nil {
		d.close()
		return nil, err
	}
	// Identities are read once, at start: a missing key file stops the
	// start rather than the first rollout.
	if d.ids, err = secrets.LoadIdentities(cfg.Secrets.AgeKeyFiles); err != nil {
		d.close()
		return nil, err
	}
	if err := d.build(); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *daemon) build() error {
	var hookTargets []webhook.Target
	restorers := revisions{}
	for _, sc := range d.cfg.Sources {
		src, err := d.source(sc)
		if err != nil {
			return err
		}
		d.sources = append(d.sources, src)
		if t, ok := src.(webhook.Target); ok {
			hookTargets = append(hookTargets, t)
		}
		if r, ok := src.(reconciler.Revisions); ok {
			restorers[src.Name()] = r
		}
	}
	reporters, err := d.reporters()
	if err != nil {
		return err
	}
	hashKey, err := reconciler.LoadHashKey(filepath.Join(d.cfg.StateDir, "preview.key"))
	if err != nil {
		return err
	}
	var own reconciler.Ownership
	if d.cluster != nil {
		own = d.cluster
	}
	rec, err := reconciler.New(reconciler.Options{
		Store:         d.store,
		Ownership:     own,
		Dialer:        d.dialer,
		Drivers:       targets.WithConfirmTimeout(targets.Drivers(), d.cfg.SSH.ConfirmTimeout.D()),
		Load:          d.loader(true),
		LoadUntrusted: d.loader(false),
		LoadPreview:   d.previewLoader(),
		Provisioner:   inventory.Provisioner{},
		Verifier:      verifier(d.log),
		Progress:      d.progress.Add,
		Revisions:     restorers,
		Logger:        d.log,
		Registerer:    d.reg,
		Version:       version,
		URL:           d.cfg.ExternalURL,
		DriftInterval: d.cfg.DriftInterval.D(),
		// ssh.parallelism bounds how many hosts are worked on at once.
		HostParallelism: d.cfg.SSH.Parallelism,
		Reporters:       reporters,
		Sources:         sourceNames(d.cfg.Sources),
		NotifyReminder:  d.cfg.Notify.Reminder.D(),
		FullDiffs:       d.cfg.Feedback.FullDiffs,
		HashKey:         hashKey,
		BeforeHostWrite: stopBeforeHostWrite(os.Getenv(stopBeforeHostWriteVar)),
	})
	if err != nil {
		return fmt.Errorf("build reconciler: %w", err)
	}
	d.rec = rec
	// Pull request comments approve revisions: the Git sources read the
	// pull request's head.
	var heads []reconciler.PullHeads
	for _, src := range d.sources {
		if h, ok := src.(reconciler.PullHeads); ok {
			heads = append(heads, h)
		}
	}
	hookTargets = append(hookTargets, &reconciler.CommentApprovals{Reconciler: rec, Heads: heads})
	hooks, err := webhook.ConfigOptions(d.cfg.Webhooks)
	if err != nil {
		return err
	}
	if d.cluster != nil {
		d.clusterRelays(rec, hookTargets)
		// Every event this replica accepts goes to the other replicas too.
		hookTargets = append([]webhook.Target{d.cluster.HookRelay()}, hookTargets...)
	}
	hooks.Deliveries, hooks.Targets, hooks.Logger, hooks.Registerer = d.store, hookTargets, d.log, d.reg
	hooks.ReadTimeout = d.cfg.HTTP.BodyTimeout.D()
	d.hooks = webhook.NewHandler(hooks)
	return nil
}

// clusterRelays wires what goes from one replica to another through etcd:
// API requests to each environment's owner, and webhook events and new
// revisions to this replica's webhook targets and sources.
func (d *daemon) clusterRelays(rec *reconciler.Reconciler, targets []webhook.Target) {
	d.operator = d.cluster.Operator(rec)
	wanters := map[string]interface{ Want(commit string) }{}
	for _, src := range d.sources {
		if w, ok := src.(interface{ Want(commit string) }); ok {
			wanters[src.Name()] = w
		}
	}
	d.relayed = cluster.Relayed{
		// A comment decision may take seconds: the watch goes on meanwhile.
		Event: func(ev sources.Event) {
			go func() {
				for _, t := range targets {
					t.Notify(ev)
				}
			}()
		},
		Want: func(source, commit string) {
			if w, ok := wanters[source]; ok {
				w.Want(commit)
			}
		},
	}
}

// revisions gives the reconciler back old revisions (manual rollback,
// restart): the folder recorded with the revision while it still exists,
// else a new checkout by the source that produced it, when it can.
type revisions map[string]reconciler.Revisions

// Checkout implements reconciler.Revisions.
func (r revisions) Checkout(ctx context.Context, rev sources.Revision) (sources.Revision, error) {
	if rev.Dir != "" {
		if _, err := os.Stat(rev.Dir); err == nil {
			return rev, nil
		}
	}
	src, ok := r[rev.Source]
	if !ok {
		return sources.Revision{}, fmt.Errorf("source %q cannot give back old revisions", rev.Source)
	}
	return src.Checkout(ctx, rev)
}

// reporters builds the Git host feedback and the notifiers of the config,
// reading their secrets now so that a missing token stops the start.
func (d *daemon) reporters() ([]status.Reporter, error) {
	ua := "driftless/" + version
	fb, err := feedback.New(d.cfg.Feedback, feedback.Options{Logger: d.log, UserAgent: ua})
	if err != nil {
		return nil, err
	}
	nt, err := notify.New(d.cfg.Notify, notify.Options{Logger: d.log, UserAgent: ua})
	if err != nil {
		return nil, err
	}
	return append(fb, nt...), nil
}

// loader validates a revision, placing local hosts in the sandbox when
// set. Inventories run for a trusted revision; an untrusted one (a pull
// request preview) gets their last result, kept in the state folder.
// An untrusted revision is not decrypted at all: no template its author
// wrote may see a decrypted value, which it could encode into what a
// preview publishes (a size, a hash, an error, whether a file changes);
// its plan says that what is encrypted was not evaluated.
func (d *daemon) loader(trusted bool) reconciler.Loader {
	inv := &inventory.Source{Dir: filepath.Join(d.cfg.StateDir, "inventory"), Run: trusted, Logger: d.log}
	ids := d.ids
	if !trusted {
		ids = nil
	}
	return func(dir string) (*config.Revision, error) {
		rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: d.localRoot,
			Identities: ids, SkipDecrypt: !trusted,
			TemplateMaxBytes: d.cfg.Templates.MaxOutputBytes, TemplateTimeout: d.cfg.Templates.Timeout.D(), Inventory: inv, Untrusted: !trusted})
		if err != nil || d.pullHost == "" {
			return rev, err
		}
		return agent.Narrow(rev, d.pullHost, d.localRoot), nil
	}
}

// previewLoader loads a preview environment of a pull request's head: no
// inventory runs, and templates using decrypted values are secret, as for
// any revision not merged.
func (d *daemon) previewLoader() reconciler.PreviewLoader {
	return func(dir string, p *config.PreviewLoad) (*config.Revision, error) {
		return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: d.localRoot, Identities: d.ids,
			TemplateMaxBytes: d.cfg.Templates.MaxOutputBytes, TemplateTimeout: d.cfg.Templates.Timeout.D(), Untrusted: true, Preview: p})
	}
}

func (d *daemon) source(sc config.SourceConfig) (sources.Source, error) {
	dir := filepath.Join(d.cfg.StateDir, "sources", sc.Name)
	if sc.Local != nil {
		return sources.NewLocal(sources.LocalOptions{Name: sc.Name, Config: *sc.Local, Dir: dir, Logger: d.log, Registerer: d.reg})
	}
	creds, err := sources.ResolveGitCredentials(*sc.Git, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", sc.Name, err)
	}
	return sources.NewGit(sources.GitOptions{Name: sc.Name, Config: *sc.Git, Credentials: creds, Dir: dir, Logger: d.log, Registerer: d.reg})
}

// mux serves hooks, metrics, health, the API and the status page.
// Manual syncs and rollbacks run under ctx, the daemon's lifetime, not the
// request's: a client that disconnects does not cut a rollback in half.
func (d *daemon) mux(ctx context.Context, ready func() bool) *http.ServeMux {
	mux := http.NewServeMux()
	d.hooks.Register(mux)
	// The API reads its token file at each mutating request: a rotated token needs no restart.
	var op api.Operator = d.rec
	if d.operator != nil {
		op = d.operator
	}
	api.New(api.Options{Reconciler: op, Token: d.cfg.API.Token, Tokens: d.cfg.API.Tokens, Logger: d.log, Context: ctx, Progress: d.progress, Pulled: d.pulled}).Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// close releases the store and connections.
func (d *daemon) close() error {
	var errs []error
	if d.rec != nil {
		errs = append(errs, d.rec.Close())
	}
	if d.dialer != nil {
		errs = append(errs, d.dialer.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	if d.etcd != nil {
		errs = append(errs, d.etcd.Close())
	}
	return errors.Join(errs...)
}

// sourceNames lists the configured sources' names.
func sourceNames(scs []config.SourceConfig) []string {
	out := make([]string, 0, len(scs))
	for _, sc := range scs {
		out = append(out, sc.Name)
	}
	return out
}

// MergedFrom implements reconciler.MergeChecker through the revision's
// source, when it can tell.
func (r revisions) MergedFrom(ctx context.Context, rev sources.Revision, head string) (bool, error) {
	mc, ok := r[rev.Source].(reconciler.MergeChecker)
	if !ok {
		return rev.Commit == head, nil
	}
	return mc.MergedFrom(ctx, rev, head)
}

// stopBeforeHostWriteVar names the test variable that makes the daemon
// stop itself (SIGSTOP), once, right before its first write to a host of
// the environment it names, after its check of ownership: the process
// tests pause a replica there past its lease. Unset in production.
const stopBeforeHostWriteVar = "DRIFTLESS_TEST_STOP_BEFORE_HOST_WRITE"

// stopBeforeHostWrite is the reconciler's BeforeHostWrite hook for the
// environment env (nil for none).
func stopBeforeHostWrite(env string) func(string) {
	if env == "" {
		return nil
	}
	var once sync.Once
	return func(e string) {
		if e != env {
			return
		}
		once.Do(func() {
			// The stop is the process's, handled by whichever thread the
			// kernel picks: the caller could go on to its write (and
			// take the host's lock) before it takes effect. It waits
			// here until it is continued.
			cont := make(chan os.Signal, 1)
			signal.Notify(cont, syscall.SIGCONT)
			defer signal.Stop(cont)
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			<-cont
		})
	}
}
