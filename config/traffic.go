package config

import (
	"net"
	"path"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Traffic takes each host out of its load balancer around its apply in a
// rollout: out (and drained), apply, verify, back in. Exactly one of
// HAProxy, HTTP and Command is set.
type Traffic struct {
	HAProxy *HAProxyTraffic `yaml:"haproxy" json:"haproxy,omitempty"`
	// HTTP hooks are URLs: driftless POSTs {"environment", "host",
	// "address", "action"} to Out and waits for a 2xx answer, which the
	// balancer sends once the host is drained; then to In.
	HTTP *TrafficHooks `yaml:"http" json:"http,omitempty"`
	// Command hooks are shell commands run on the daemon's machine, with
	// DRIFTLESS_ENVIRONMENT, DRIFTLESS_HOST, DRIFTLESS_ADDRESS and
	// DRIFTLESS_TRAFFIC (out or in) set; exit 0 is success. Out returns
	// once the host is drained.
	Command *TrafficHooks `yaml:"command" json:"command,omitempty"`
	// DrainTimeout bounds taking a host out, its wait for drained
	// connections included (0: 60 s); a host not drained by then is
	// applied anyway, and its hook's error is logged.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout,omitempty"`
	Pos          Position `yaml:"-" json:"-"`
}

// HAProxyTraffic reaches HAProxy's runtime API (`stats socket ... level
// admin`): a host is set to drain, waited for until its current sessions
// are 0, then set back to ready.
type HAProxyTraffic struct {
	// Address is the runtime API: an absolute Unix socket path, or host:port.
	Address string `yaml:"address" json:"address"`
	// Backend is the HAProxy backend the hosts are servers of.
	Backend string `yaml:"backend" json:"backend"`
	// Servers maps a host name to its server name in the backend, where
	// they differ (a host absent from it is the server of its own name).
	Servers map[string]string `yaml:"servers" json:"servers,omitempty"`
}

// Server is the backend's server name of host.
func (h *HAProxyTraffic) Server(host string) string {
	if s, ok := h.Servers[host]; ok && s != "" {
		return s
	}
	return host
}

// TrafficHooks are the two hooks of an http or command balancer.
type TrafficHooks struct {
	Out string `yaml:"out" json:"out"`
	In  string `yaml:"in" json:"in"`
}

// decodeTraffic decodes `traffic:` and checks it names one balancer, fully.
func decodeTraffic(d *decoder, env *Environment, n *yaml.Node) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	t := &Traffic{Pos: d.pos(n)}
	keys := d.decodeStruct(n, reflect.ValueOf(t).Elem(), "traffic", nil)
	if n.Kind != yaml.MappingNode {
		return
	}
	var kinds []string
	for _, k := range []string{"haproxy", "http", "command"} {
		if _, ok := keys[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 || (t.HAProxy == nil && t.HTTP == nil && t.Command == nil) {
		found := strings.Join(kinds, ", ")
		if found == "" {
			found = "none"
		}
		d.errorf(n, "traffic: needs exactly one of haproxy, http or command (found: %s)", found)
		return
	}
	if t.DrainTimeout < 0 {
		d.errorf(keys["drain_timeout"], "traffic.drain_timeout: must not be negative")
	}
	switch {
	case t.HAProxy != nil:
		h := t.HAProxy
		at := keys["haproxy"]
		if h.Address == "" || h.Backend == "" {
			d.errorf(at, "traffic.haproxy: needs address (a Unix socket path or host:port) and backend")
		} else if !path.IsAbs(h.Address) {
			if _, _, err := net.SplitHostPort(h.Address); err != nil {
				d.errorf(at, "traffic.haproxy.address: %q is neither an absolute socket path nor host:port", h.Address)
			}
		}
		for _, s := range append([]string{h.Backend}, mapValues(h.Servers)...) {
			if strings.ContainsAny(s, " \t\r\n/;") {
				d.errorf(at, "traffic.haproxy: %q is not a backend or server name", s)
			}
		}
	case t.HTTP != nil:
		for _, u := range []string{t.HTTP.Out, t.HTTP.In} {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				d.errorf(keys["http"], "traffic.http: out and in must be http(s) URLs, got %q", u)
			}
		}
	case t.Command != nil:
		if strings.TrimSpace(t.Command.Out) == "" || strings.TrimSpace(t.Command.In) == "" {
			d.errorf(keys["command"], "traffic.command: needs out and in")
		}
	}
	env.Traffic = t
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
