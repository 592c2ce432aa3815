// Package httpserver is the daemon's HTTP server: read and write limits per
// class of route, idle keep-alive connections closed, and a cap on open
// connections overall and per remote address.
package httpserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits are the read and write time of one request of a class of routes,
// counted from the end of its headers.
type Limits struct {
	Read  time.Duration
	Write time.Duration
}

// Route gives the limits of the requests whose path starts with Prefix.
type Route struct {
	Prefix string
	Limits Limits
}

// Options configures a Server.
type Options struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Routes are tried in order; the first prefix that matches wins, and
	// Default applies to the rest.
	Routes  []Route
	Default Limits
	// MaxConns and MaxConnsPerAddr cap the open connections (0: no cap).
	MaxConns        int
	MaxConnsPerAddr int
	// Registerer receives driftless_http_connections_refused_total; nil
	// keeps it in a private registry.
	Registerer prometheus.Registerer
}

// Server serves a handler with the limits of its Options.
type Server struct {
	srv     *http.Server
	opts    Options
	refused *prometheus.CounterVec
}

// New builds a server for h.
func New(h http.Handler, opts Options) (*Server, error) {
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftless_http_connections_refused_total",
		Help: "HTTP connections closed at once because too many were open, overall (total) or from one remote address (address).",
	}, []string{"reason"})
	if err := opts.Registerer.Register(refused); err != nil {
		return nil, errors.Join(errors.New("register http metrics"), err)
	}
	s := &Server{opts: opts, refused: refused}
	s.srv = &http.Server{
		Handler:           s.limit(h),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
	}
	return s, nil
}

// limit sets the read and write deadlines of each request by its route.
// A handler that reads a body for longer than the read limit gets an
// error, and the connection is closed once the answer is written.
func (s *Server) limit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := s.opts.Default
		for _, rt := range s.opts.Routes {
			if strings.HasPrefix(r.URL.Path, rt.Prefix) {
				l = rt.Limits
				break
			}
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		if l.Read > 0 {
			_ = rc.SetReadDeadline(now.Add(l.Read))
		}
		if l.Write > 0 {
			_ = rc.SetWriteDeadline(now.Add(l.Write))
		}
		h.ServeHTTP(w, r)
	})
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(&capListener{Listener: ln, s: s, open: map[string]int{}})
}

// Shutdown stops accepting and waits for the requests in progress.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// capListener closes a new connection at once when too many are open.
type capListener struct {
	net.Listener
	s     *Server
	mu    sync.Mutex
	total int
	open  map[string]int
}

// Accept returns the next connection within the caps.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteHost(c)
		if reason := l.take(addr); reason != "" {
			l.s.refused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		return &capConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

// take counts a new connection of addr in, or says which cap it exceeds.
func (l *capListener) take(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.s.opts.MaxConns > 0 && l.total >= l.s.opts.MaxConns:
		return "total"
	case l.s.opts.MaxConnsPerAddr > 0 && l.open[addr] >= l.s.opts.MaxConnsPerAddr:
		return "address"
	}
	l.total++
	l.open[addr]++
	return ""
}

func (l *capListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
}

// remoteHost is the address of the peer without its port.
func remoteHost(c net.Conn) string {
	a := c.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// capConn gives its slot back once, when closed.
type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot.
func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
