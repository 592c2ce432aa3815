package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Cluster turns on cluster mode: several daemons share the environments
// through etcd, each environment owned by one live replica at a time. A
// daemon without it keeps its state in its own bbolt file, as before.
type Cluster struct {
	// Endpoints are the etcd members' client URLs (http:// or https://).
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// TLS authenticates the members and this replica (https endpoints).
	TLS ClusterTLS `yaml:"tls" json:"tls,omitzero"`
	// Prefix starts every key driftless keeps in etcd, so that several
	// clusters (or other programs) can share one etcd.
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// Replica names this daemon among the replicas (default: the
	// machine's hostname, see ReplicaName).
	Replica string `yaml:"replica" json:"replica,omitempty"`
	// LeaseTTL is how long a replica that stopped renewing its etcd lease
	// still owns its environments: a whole number of seconds.
	LeaseTTL Duration `yaml:"lease_ttl" json:"lease_ttl,omitempty"`
}

// ClusterTLS holds the files of the etcd client's TLS: the CA that signed
// the members' certificates, and this replica's client certificate and key.
type ClusterTLS struct {
	CAFile   string `yaml:"ca_file" json:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
}

// The defaults of Cluster, and the bounds of its lease TTL.
const (
	DefaultClusterPrefix = "/driftless/"
	DefaultLeaseTTL      = 10 * time.Second
	MinLeaseTTL          = 2 * time.Second
	MaxLeaseTTL          = 10 * time.Minute
)

// ReplicaName is the replica's configured name, or the machine's hostname.
func (c *Cluster) ReplicaName() (string, error) {
	if c.Replica != "" {
		return c.Replica, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cluster replica: no name configured and no hostname: %w", err)
	}
	if !nameRe.MatchString(h) {
		return "", fmt.Errorf("cluster replica: hostname %q is not a valid name (letters, digits, '.', '_' and '-'): set cluster replica", h)
	}
	return h, nil
}

// clusterDefaults fills the cluster settings the file left out.
func clusterDefaults(c *Cluster) {
	if c == nil {
		return
	}
	if c.Prefix == "" {
		c.Prefix = DefaultClusterPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = Duration(DefaultLeaseTTL)
	}
}

// validateCluster checks the cluster section, each error at its value:
// endpoints present, all http or all https URLs; TLS files only with https,
// and a certificate and a key together; a valid replica name; a lease TTL
// of whole seconds within its bounds.
func validateCluster(d *decoder, c *Cluster, root *yaml.Node) {
	if c == nil {
		return
	}
	at := func(path ...any) *yaml.Node { return nodeAt(root, append([]any{"cluster"}, path...)...) }
	if len(c.Endpoints) == 0 {
		d.errorf(at("endpoints"), "cluster endpoints: at least one etcd client URL is needed")
	}
	schemes := map[string]bool{}
	for i, ep := range c.Endpoints {
		if err := CheckURL(ep, "http", "https"); err != nil {
			d.errorf(at("endpoints", i), "cluster endpoints[%d]: %v", i, err)
			continue
		}
		u, _ := url.Parse(ep)
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			d.errorf(at("endpoints", i), "cluster endpoints[%d]: an etcd client URL has no user, path or query", i)
		}
		schemes[u.Scheme] = true
	}
	if len(schemes) > 1 {
		d.errorf(at("endpoints"), "cluster endpoints: all http or all https, not both")
	}
	tls := c.TLS
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		d.errorf(at("tls"), "cluster tls: cert_file and key_file go together")
	}
	if tls != (ClusterTLS{}) && schemes["http"] {
		d.errorf(at("tls"), "cluster tls: set, but the endpoints are http:// URLs (use https://)")
	}
	if c.Replica != "" && !nameRe.MatchString(c.Replica) {
		d.errorf(at("replica"), "cluster replica: %q may hold only letters, digits, '.', '_' and '-'", c.Replica)
	}
	if strings.ContainsAny(c.Prefix, "\x00\n") {
		d.errorf(at("prefix"), "cluster prefix: must not hold a NUL or a newline")
	}
	ttl := c.LeaseTTL.D()
	switch {
	case ttl%time.Second != 0:
		d.errorf(at("lease_ttl"), "cluster lease_ttl: %s is not a whole number of seconds (etcd leases count seconds)", ttl)
	case ttl < MinLeaseTTL || ttl > MaxLeaseTTL:
		d.errorf(at("lease_ttl"), "cluster lease_ttl: %s is outside %s to %s", ttl, MinLeaseTTL, MaxLeaseTTL)
	}
}
