// Package traffic takes hosts out of their load balancer and puts them
// back, around their apply in a rollout: HAProxy through its runtime API,
// or any balancer through http or command hooks.
package traffic

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/driftless/driftless/config"
)

// DefaultDrainTimeout bounds taking a host out when the environment sets
// no drain_timeout.
const DefaultDrainTimeout = 60 * time.Second

// ErrNotDrained says that a host was taken out of rotation but still had
// connections when the drain timeout ended: the rollout applies it anyway.
var ErrNotDrained = errors.New("not drained before the drain timeout")

// Balancer takes one host out of rotation (returning once it is drained)
// and puts it back.
type Balancer interface {
	Out(ctx context.Context, env string, h *config.Host) error
	In(ctx context.Context, env string, h *config.Host) error
}

// Options are the dependencies of the balancers. Every field is optional.
type Options struct {
	// HTTPClient posts http hooks (nil: a client without its own timeout;
	// every call has a deadline).
	HTTPClient *http.Client
	// PollInterval is how often HAProxy's sessions are read while a
	// server drains (0: 100 ms).
	PollInterval time.Duration
}

// New returns the balancer t declares, nil when t is nil.
func New(t *config.Traffic, o Options) Balancer {
	if t == nil {
		return nil
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	switch {
	case t.HAProxy != nil:
		return &HAProxy{cfg: *t.HAProxy, poll: o.PollInterval}
	case t.HTTP != nil:
		return &httpHooks{hooks: *t.HTTP, client: o.HTTPClient}
	case t.Command != nil:
		return &commandHooks{hooks: *t.Command}
	}
	return nil
}

// DrainTimeout is t's drain timeout, defaulted.
func DrainTimeout(t *config.Traffic) time.Duration {
	if t == nil || t.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return t.DrainTimeout.D()
}
