package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/driftless/driftless/config"
)

// dialTimeout bounds connecting to etcd at start.
const dialTimeout = 5 * time.Second

// Dial connects to the etcd of a cluster section: over TLS for https
// endpoints, checking the members against ca_file (the system's roots
// when unset) and presenting cert_file and key_file when set. The client
// is the caller's to close.
func Dial(c *config.Cluster) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: dialTimeout, Logger: zap.NewNop()}
	if len(c.Endpoints) > 0 && strings.HasPrefix(c.Endpoints[0], "https://") {
		t, err := clientTLS(c.TLS)
		if err != nil {
			return nil, err
		}
		cfg.TLS = t
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd: %w", err)
	}
	return cli, nil
}

// clientTLS builds the etcd client's TLS configuration from the files.
func clientTLS(f config.ClusterTLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster tls: read ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster tls: ca_file %s holds no PEM certificate", f.CAFile)
		}
	}
	if f.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster tls: load cert_file and key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}
