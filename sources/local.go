package sources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
)

// Defaults of a local folder source.
const (
	DefaultLocalInterval = 30 * time.Second
	DefaultDebounce      = 250 * time.Millisecond
)

// LocalOptions configure a local folder source.
type LocalOptions struct {
	Name   string
	Config config.Local
	// Dir is this source's own folder under the state directory, for the
	// snapshots. Created when missing.
	Dir        string
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
	Clock      Clock
	// Debounce is how long the folder must be quiet after a change before
	// it is read (DefaultDebounce when zero).
	Debounce time.Duration
}

// Local watches a folder on the daemon's machine (for development). A change
// seen by fsnotify is only a hint to read the whole tree again once things
// are quiet; the tree is read every interval anyway. A changed tree is
// copied into an immutable snapshot folder, named by its hash, so the
// reconciler never reads a file while it is being edited.
type Local struct {
	name     string
	root     string
	dir      string
	log      zerolog.Logger
	m        *metrics
	clock    Clock
	interval time.Duration
	debounce time.Duration

	// Used only by the goroutine running Run.
	keep retention
}

var _ Source = (*Local)(nil)

// NewLocal checks the options; nothing is read before Run.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Name == "" {
		return nil, errors.New("local source: a name is required")
	}
	if opts.Config.Path == "" || opts.Dir == "" {
		return nil, fmt.Errorf("local source %s: a path and a work folder are required", opts.Name)
	}
	root, err := filepath.Abs(opts.Config.Path)
	if err != nil {
		return nil, fmt.Errorf("local source %s: %w", opts.Name, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local source %s: %w", opts.Name, err)
	}
	l := &Local{
		name:     opts.Name,
		root:     root,
		dir:      dir,
		log:      opts.Logger.With().Str("source", opts.Name).Logger(),
		clock:    opts.Clock,
		interval: opts.Config.Interval.D(),
		debounce: opts.Debounce,
	}
	if l.clock == nil {
		l.clock = SystemClock{}
	}
	if l.interval <= 0 {
		l.interval = DefaultLocalInterval
	}
	if l.debounce <= 0 {
		l.debounce = DefaultDebounce
	}
	if l.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("local source %s: %w", opts.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("local source %s: create work folder: %w", opts.Name, err)
	}
	return l, nil
}

// Name returns the source's name.
func (l *Local) Name() string { return l.name }

// skip leaves out Git's own folder and driftless's state folder, should it
// live inside the watched folder (it would otherwise snapshot itself).
func (l *Local) skip(path string, d fs.DirEntry) bool {
	return d.IsDir() && (d.Name() == ".git" || path == l.dir)
}

// Run reads the folder at once, then after every burst of changes and every
// interval, and sends each new tree as a revision. It returns nil when ctx
// ends and never closes out.
func (l *Local) Run(ctx context.Context, out chan<- Revision) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("local source %s: start watcher: %w", l.name, err)
	}
	defer w.Close()
	l.watch(w, l.root)
	var pending *Revision
	var debounce <-chan time.Time
	resync := l.clock.After(0)
	for {
		var send chan<- Revision
		var next Revision
		if pending != nil {
			send, next = out, *pending
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- next:
			pending = nil
			l.keep.markSent(next.Commit)
			continue
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				l.watch(w, ev.Name)
			}
			if debounce == nil {
				debounce = l.clock.After(l.debounce)
			}
			continue
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// A lost event (queue overflow) is repaired by reading everything.
			l.log.Warn().Err(err).Msg("folder watch error; reading the whole folder")
			if debounce == nil {
				debounce = l.clock.After(l.debounce)
			}
			continue
		case <-debounce:
			debounce = nil
		case <-resync:
			resync = l.clock.After(jitter(l.interval))
		}
		// The folder may have been created or replaced since: watch it again.
		l.watch(w, l.root)
		rev, unstable, err := l.scan()
		switch {
		case err != nil:
			l.log.Error().Err(err).Msg("read folder failed; keeping the last good revision")
		case unstable:
			if debounce == nil {
				debounce = l.clock.After(l.debounce)
			}
		case rev != nil:
			l.log.Info().Str("revision", rev.Commit).Msg("new revision")
			pending = rev
		}
	}
}

// watch adds path and every folder under it to the watcher. fsnotify is
// not recursive, so each folder is watched on its own.
func (l *Local) watch(w *fsnotify.Watcher, path string) {
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != l.root && l.skip(p, d) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			l.log.Debug().Err(err).Str("path", p).Msg("watch folder")
		}
		return nil
	})
}
