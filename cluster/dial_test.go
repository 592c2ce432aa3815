package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/etcdserver"
)

// TestDialTLS: a replica reaches an etcd that requires client
// certificates with the cluster section's files; without a client
// certificate, or trusting another CA, it does not.
func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCA(t, dir, "ca")
	writeCA(t, dir, "other-ca")
	srvCert, srvKey := writeLeaf(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := writeLeaf(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	srv := etcdserver.StartTLS(t, etcdserver.TLS{CAFile: filepath.Join(dir, "ca.pem"), ServerCert: srvCert, ServerKey: srvKey, ClientCert: cliCert, ClientKey: cliKey})
	for _, c := range []struct {
		name string
		tls  config.ClusterTLS
		ok   bool
	}{
		{"ca and client pair", config.ClusterTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: cliCert, KeyFile: cliKey}, true},
		{"no client pair", config.ClusterTLS{CAFile: filepath.Join(dir, "ca.pem")}, false},
		{"another ca", config.ClusterTLS{CAFile: filepath.Join(dir, "other-ca.pem"), CertFile: cliCert, KeyFile: cliKey}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cli, err := Dial(&config.Cluster{Endpoints: []string{srv.Endpoint()}, TLS: c.tls})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = cli.Put(ctx, "/tls", "x")
			if (err == nil) != c.ok {
				t.Fatalf("put: %v, want success %v", err, c.ok)
			}
		})
	}
	if _, err := Dial(&config.Cluster{Endpoints: []string{srv.Endpoint()}, TLS: config.ClusterTLS{CAFile: cliKey}}); err == nil {
		t.Fatal("a ca_file without a certificate was accepted")
	}
}

// writeCA writes a self-signed CA as NAME.pem and returns it and its key.
func writeCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writeLeaf writes a certificate for 127.0.0.1 signed by ca and its key,
// and returns their paths.
func writeLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certPath, "CERTIFICATE", der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
