package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// HTTP bounds the daemon's HTTP server, so that a slow or idle client
// cannot hold a connection or a descriptor: each route class gets its own
// read and write limits, idle keep-alive connections are closed, and the
// number of open connections is capped.
type HTTP struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout,omitempty"`
	// BodyTimeout bounds reading the body of a webhook or API request
	// (small bodies); it starts when the headers are read.
	BodyTimeout Duration `yaml:"body_timeout" json:"body_timeout,omitempty"`
	// WriteTimeout bounds answering a webhook or API request.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout,omitempty"`
	// ScrapeTimeout bounds answering /metrics, the status page and the
	// health checks: long enough for a slow scraper to read every series.
	ScrapeTimeout Duration `yaml:"scrape_timeout" json:"scrape_timeout,omitempty"`
	// IdleTimeout closes a keep-alive connection that sends no new request.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// MaxConnections caps the open connections; past it new ones are closed
	// at once.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// MaxConnectionsPerAddress caps the open connections of one remote
	// address (behind a reverse proxy, set it to MaxConnections).
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address" json:"max_connections_per_address,omitempty"`
}

// The defaults of HTTP.
const (
	DefaultReadHeaderTimeout        = 10 * time.Second
	DefaultBodyTimeout              = 30 * time.Second
	DefaultWriteTimeout             = 30 * time.Second
	DefaultScrapeTimeout            = 2 * time.Minute
	DefaultIdleTimeout              = 60 * time.Second
	DefaultMaxConnections           = 1024
	DefaultMaxConnectionsPerAddress = 256
)

// httpDefaults fills the HTTP settings the file left out.
func httpDefaults(h *HTTP, setDur func(*Duration, time.Duration), setInt func(*int, int)) {
	setDur(&h.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&h.BodyTimeout, DefaultBodyTimeout)
	setDur(&h.WriteTimeout, DefaultWriteTimeout)
	setDur(&h.ScrapeTimeout, DefaultScrapeTimeout)
	setDur(&h.IdleTimeout, DefaultIdleTimeout)
	setInt(&h.MaxConnections, DefaultMaxConnections)
	setInt(&h.MaxConnectionsPerAddress, min(DefaultMaxConnectionsPerAddress, h.MaxConnections))
}

// validateHTTP refuses negative caps and a per-address cap above the
// overall one (negative durations are refused when decoding).
func validateHTTP(d *decoder, h HTTP, at *yaml.Node) {
	if h.MaxConnections < 0 || h.MaxConnectionsPerAddress < 0 {
		d.errorf(at, "http max_connections: must not be negative")
	}
	if h.MaxConnectionsPerAddress > h.MaxConnections {
		d.errorf(at, "http max_connections_per_address (%d) is larger than max_connections (%d)", h.MaxConnectionsPerAddress, h.MaxConnections)
	}
}
