// Package notify tells people what driftless did: deploys, failures,
// rollbacks and drift, through a generic JSON webhook, a Slack-compatible
// incoming webhook, or email over SMTP.
//
// A Notifier's Report is synchronous but bounded: it returns once the
// notice is delivered, its retries have run out, or its own timeout (or
// the caller's context) has ended, whichever comes first. The reconciler
// calls it in its own goroutine, so a dead receiver never holds a rollout.
// Failures are logged, never returned.
package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// Options are the dependencies shared by every notifier.
type Options struct {
	// Logger receives one line per notice that could not be delivered.
	Logger zerolog.Logger
	// HTTPClient posts webhooks (nil: a client with a 15 s timeout per request).
	HTTPClient *http.Client
	// Timeout bounds one notice, its retries included (0: 30 s).
	Timeout time.Duration
	// Backoff is the retry policy (zero: kit.Backoff's defaults).
	Backoff kit.Backoff
	// UserAgent names the daemon to webhook receivers (empty: "driftless").
	UserAgent string
	// TLSConfig is the base of the SMTP STARTTLS configuration, for a
	// private CA (nil: the system's roots). ServerName is always set to
	// the server's host.
	TLSConfig *tls.Config
	// Hostname is sent in EHLO and names Message-IDs (empty: os.Hostname, else "localhost").
	Hostname string
	// Now stamps the Date header (nil: time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "driftless"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// sender is one kind of destination: it encodes a report once (so that
// every retry sends the same bytes, the same Message-ID), then sends it.
type sender interface {
	encode(r status.Report) ([]byte, error)
	send(ctx context.Context, payload []byte) error
}

// Notifier delivers the reports whose status it wants to one destination.
type Notifier struct {
	name    string
	events  map[string]bool
	s       sender
	timeout time.Duration
	backoff kit.Backoff
	log     zerolog.Logger
}

var _ status.Reporter = (*Notifier)(nil)

// Name says which destination this is ("webhooks[0]", "slack[1]", "email"), never its URL.
func (n *Notifier) Name() string { return n.name }

// Wants reports whether a report of this status is sent.
func (n *Notifier) Wants(status string) bool { return n.events[status] }

// Report delivers r if its status is wanted, within the notifier's
// timeout; a failure is logged.
func (n *Notifier) Report(ctx context.Context, r status.Report) {
	if !n.events[r.Status] && !(r.Gate != "" && n.events[eventGate]) {
		return
	}
	log := n.log.With().Str("environment", r.Environment).Str("revision", kit.Abbrev(r.Commit)).Str("status", r.Status).Logger()
	defer func() {
		// A notice is never worth a crash of the daemon.
		if p := recover(); p != nil {
			log.Error().Interface("panic", p).Msg("notifier panicked")
		}
	}()
	payload, err := n.s.encode(r)
	if err != nil {
		log.Error().Err(err).Msg("cannot encode the notification")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if err := n.backoff.Do(ctx, func(ctx context.Context) error { return n.s.send(ctx, payload) }); err != nil {
		log.Error().Err(err).Msg("cannot deliver the notification")
		return
	}
	log.Debug().Msg("notification delivered")
}

// defaultEvents are sent when a destination lists none: what a person
// wants to hear about, not every rollout's start or every preview.
var defaultEvents = []string{status.StatusSuccess, status.StatusFailure, status.StatusRolledBack, status.StatusDrift, eventGate}

// eventGate names the reports of a revision held at a gate (waiting for
// promotion, a deploy window, an approval; rejected). They are sent once
// per change of where the revision waits, never per pass.
const eventGate = "gate"

// parseEvents turns the configured event names into report statuses. The
// names of the configuration ("rollback") and the statuses themselves
// ("rolled_back") are both accepted.
func parseEvents(names []string) (map[string]bool, error) {
	if len(names) == 0 {
		names = defaultEvents
	}
	out := map[string]bool{}
	for _, n := range names {
		var st string
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "success", "deploy", "deployed":
			st = status.StatusSuccess
		case "failure", "failed":
			st = status.StatusFailure
		case "rollback", "rolled_back":
			st = status.StatusRolledBack
		case "drift":
			st = status.StatusDrift
		case "pending", "started":
			st = status.StatusPending
		case "preview":
			st = status.StatusPreview
		case eventGate:
			st = eventGate
		default:
			return nil, fmt.Errorf("unknown event %q: want success, failure, rollback, drift, pending, preview or gate", n)
		}
		out[st] = true
	}
	return out, nil
}

// New builds a notifier for every destination of cfg, reading the secrets
// they reference. A destination that cannot be set up is an error, so the
// daemon does not start with an alert path silently missing.
func New(cfg config.Notify, opts Options) ([]status.Reporter, error) {
	opts = opts.withDefaults()
	var out []status.Reporter
	for _, group := range []struct {
		kind  string
		hooks []config.NotifyWebhook
	}{{"webhooks", cfg.Webhooks}, {"slack", cfg.Slack}} {
		kind := group.kind
		for i, h := range group.hooks {
			name := fmt.Sprintf("%s[%d]", kind, i)
			u, err := hookURL(h)
			if err != nil {
				return nil, fmt.Errorf("notify %s: %w", name, err)
			}
			var s sender = &webhook{url: u, client: opts.HTTPClient, userAgent: opts.UserAgent}
			if kind == "slack" {
				s = &slack{webhook{url: u, client: opts.HTTPClient, userAgent: opts.UserAgent}}
			}
			n, err := newNotifier(name, h.Events, s, opts)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	if cfg.Email != nil {
		m, err := newMailer(*cfg.Email, opts)
		if err != nil {
			return nil, fmt.Errorf("notify email: %w", err)
		}
		n, err := newNotifier("email", cfg.Email.Events, m, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func newNotifier(name string, events []string, s sender, opts Options) (*Notifier, error) {
	ev, err := parseEvents(events)
	if err != nil {
		return nil, fmt.Errorf("notify %s: %w", name, err)
	}
	return &Notifier{name: name, events: ev, s: s, timeout: opts.Timeout, backoff: opts.Backoff,
		log: opts.Logger.With().Str("notify", name).Logger()}, nil
}

// hookURL reads and checks a webhook's URL. Errors never quote it: a chat
// webhook URL is itself the secret.
func hookURL(h config.NotifyWebhook) (string, error) {
	raw := h.URL
	if !h.URLRef.IsZero() {
		if raw != "" {
			return "", fmt.Errorf("both url and url_secret are set")
		}
		v, err := h.URLRef.Read()
		if err != nil {
			return "", fmt.Errorf("url: %w", err)
		}
		raw = strings.TrimSpace(string(v))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("url: want an absolute http(s) URL")
	}
	return u.String(), nil
}
