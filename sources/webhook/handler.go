package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/sources"
)

// Defaults of Options.
const (
	// DefaultMaxBodyBytes is GitHub's own cap on payloads: 25 MiB.
	DefaultMaxBodyBytes = 25 << 20
	// DefaultReadTimeout is how long reading a body may take.
	DefaultReadTimeout = 30 * time.Second
	// DefaultReplayWindow is how long a delivery id is remembered.
	DefaultReplayWindow = 24 * time.Hour
	// maxDeliveryID bounds the stored id; longer ids are stored hashed.
	maxDeliveryID = 128
)

// Results, the values of the result label of driftless_webhook_requests_total.
const (
	ResultAccepted     = "accepted"
	ResultIgnored      = "ignored"
	ResultUnauthorized = "unauthorized"
	ResultReplay       = "replay"
	ResultTooLarge     = "too_large"
	ResultBadRequest   = "bad_request"
	ResultError        = "error"
)

// Options configures a Handler.
type Options struct {
	// Secrets holds each provider's secret; a provider without one answers
	// every request with 403.
	Secrets Secrets
	// GenericHeader is the header of the generic provider's signature
	// (DefaultGenericHeader when empty).
	GenericHeader string
	// Deliveries remembers delivery ids to refuse replays; an in-memory
	// store is used when nil.
	Deliveries DeliveryStore
	// ReplayWindow is how long a delivery id is refused again
	// (DefaultReplayWindow when zero).
	ReplayWindow time.Duration
	// MaxBodyBytes caps a request body (DefaultMaxBodyBytes when zero).
	MaxBodyBytes int64
	// ReadTimeout bounds reading one request's body, so that a sender
	// trickling bytes cannot hold a connection (DefaultReadTimeout when zero).
	ReadTimeout time.Duration
	// Targets are offered every accepted push and pull request event.
	Targets []Target
	// Logger receives one line per request; bodies are never logged.
	Logger zerolog.Logger
	// Registerer receives driftless_webhook_requests_total; nil skips it.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Handler serves POST /hooks/{provider}.
type Handler struct {
	opts      Options
	providers map[string]provider
	requests  *prometheus.CounterVec
}

var _ http.Handler = (*Handler)(nil)

// NewHandler builds a handler from opts, filling in defaults.
func NewHandler(opts Options) *Handler {
	if opts.Deliveries == nil {
		opts.Deliveries = &MemoryDeliveries{}
	}
	if opts.ReplayWindow <= 0 {
		opts.ReplayWindow = DefaultReplayWindow
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, providers: providers(opts.GenericHeader)}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftless_webhook_requests_total",
		Help: "Webhook requests received, by provider, normalised event and result.",
	}, []string{"provider", "event", "result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(h.requests); err != nil {
			// A second handler on the same registry (a config reload) shares
			// the first one's counter instead of failing.
			if cv, ok := existing(err); ok {
				h.requests = cv
			} else {
				opts.Logger.Error().Err(err).Msg("register webhook metrics")
			}
		}
	}
	return h
}

// existing returns the already registered counter behind err, if that is
// what err says.
func existing(err error) (*prometheus.CounterVec, bool) {
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		return nil, false
	}
	cv, ok := are.ExistingCollector.(*prometheus.CounterVec)
	return cv, ok
}

// Register adds the handler to mux as POST /hooks/{provider}.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("POST /hooks/{provider}", h)
}

// outcome is what one request came to, for the answer, the metric and the log.
type outcome struct {
	provider, event, result string
	status                  int
	ev                      sources.Event
	err                     error
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := h.handle(w, r)
	h.requests.WithLabelValues(o.provider, o.event, o.result).Inc()
	h.log(r, o)
	if o.status >= 500 {
		http.Error(w, http.StatusText(o.status), o.status)
		return
	}
	if o.status >= 400 {
		// The reason goes back to the sender, where an operator setting up
		// a hook reads it in the delivery log. It is one of this package's
		// fixed messages and never quotes the body or a header value.
		http.Error(w, http.StatusText(o.status)+": "+o.err.Error(), o.status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(o.status)
	_, _ = io.WriteString(w, o.result+"\n")
}

// handle runs the steps of one delivery, stopping at the first that fails:
// find the provider, read the body, check the signature, parse, refuse a
// replay, offer the event to the targets.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request) outcome {
	name := r.PathValue("provider")
	p, ok := h.providers[name]
	if !ok {
		// The label is fixed so that random paths cannot grow the metric.
		return outcome{provider: "unknown", event: "unknown", result: ResultBadRequest, status: http.StatusNotFound,
			err: errors.New("unknown provider")}
	}
	o := outcome{provider: name, event: "unknown"}
	secret := p.secret(h.opts.Secrets)
	if len(secret) == 0 {
		o.result, o.status, o.err = ResultUnauthorized, http.StatusForbidden, errors.New("no secret is configured for this provider")
		return o
	}
	body, err := h.readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			o.result, o.status = ResultTooLarge, http.StatusRequestEntityTooLarge
		case errors.Is(err, os.ErrDeadlineExceeded):
			o.result, o.status = ResultBadRequest, http.StatusRequestTimeout
		default:
			o.result, o.status = ResultBadRequest, http.StatusBadRequest
		}
		o.err = err
		return o
	}
	if err := p.verify(r.Header, body, secret); err != nil {
		o.result, o.status, o.err = ResultUnauthorized, http.StatusUnauthorized, fmt.Errorf("verify signature: %w", err)
		return o
	}
	evs, err := p.events(r.Header, body)
	ev := evs[0]
	o.ev, o.event = ev, eventLabel(ev.Kind)
	if err != nil {
		o.result, o.status, o.err = ResultBadRequest, http.StatusBadRequest, err
		return o
	}
	seen, err := h.markDelivery(name, ev.DeliveryID, body)
	if err != nil {
		o.result, o.status, o.err = ResultError, http.StatusInternalServerError, err
		return o
	}
	if seen {
		o.result, o.status, o.err = ResultReplay, http.StatusConflict, errors.New("delivery already received")
		return o
	}
	if ev.Kind == KindPing {
		o.result, o.status = ResultAccepted, http.StatusOK
		return o
	}
	o.result, o.status = ResultIgnored, http.StatusAccepted
	// Every event of the delivery is offered; the log line names the first
	// one a target took, since that is the one that schedules work, and so
	// does the metric's event label.
	for _, e := range evs {
		if actionable(e) && h.notify(e) {
			if o.result != ResultAccepted {
				o.ev, o.event = e, eventLabel(e.Kind)
			}
			o.result = ResultAccepted
		}
	}
	return o
}

// readBody reads at most MaxBodyBytes. A declared length over the cap is
// refused before reading anything; an undeclared one is cut off by
// http.MaxBytesReader, which also closes the connection.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, fmt.Errorf("read body: %w", &http.MaxBytesError{Limit: limit})
	}
	// The deadline is on the wall clock, not Options.Now: it is the
	// connection's. A writer that cannot set one (a test recorder) is fine.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.opts.ReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return buf.Bytes(), nil
}

// markDelivery records every key of a delivery and reports whether any of
// them was seen within the replay window: one step of the store, durable
// before the sender is answered. All keys are recorded even when one is
// already known, so that a new id sent with an old body is remembered as
// well.
func (h *Handler) markDelivery(provider, id string, body []byte) (bool, error) {
	seen, err := h.opts.Deliveries.MarkDelivery(provider, deliveryKeys(id, body), h.opts.Now(), h.opts.ReplayWindow)
	if err != nil {
		return false, fmt.Errorf("record delivery: %w", err)
	}
	return seen, nil
}

// notify offers ev to every target and reports whether any took it. Every
// target is asked, since several sources can follow one repository.
func (h *Handler) notify(ev sources.Event) bool {
	matched := false
	for i, t := range h.opts.Targets {
		if h.offer(i, t, ev) {
			matched = true
		}
	}
	return matched
}

// offer calls one target. A target that panics is logged and counted as not
// matching, so that it neither takes the other targets' events away nor
// leaves the request without its answer, metric and log line.
func (h *Handler) offer(i int, t Target, ev sources.Event) (took bool) {
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error().Int("target", i).Str("repository", ev.Repository).
				Str("panic", fmt.Sprint(p)).Msg("webhook target panicked")
			took = false
		}
	}()
	return t.Notify(ev)
}
