// Package etcdserver starts a real etcd server for tests: Debian's
// etcd-server package (etcd 3.4), one member on loopback, on free ports,
// with a throwaway data directory. A test can stop it, kill it and start
// it again on the same ports and data, to see what a client does while
// etcd is away. A test that needs it fails in strict mode (CI) when the
// etcd binary is not installed, and is skipped otherwise (test/need).
package etcdserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/syncbuf"
)

// startTimeout bounds how long Start and Restart wait for the member to
// answer /health; a single member on loopback is healthy in about a
// second.
const startTimeout = 30 * time.Second

// Server is one running (or stopped) etcd member.
type Server struct {
	t       testing.TB
	bin     string
	dataDir string
	client  string // host:port of the client listener
	peer    string // host:port of the peer listener
	tls     *TLS

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncbuf.Buffer
}

// TLS makes the member serve its clients over TLS and require a client
// certificate signed by CAFile. The client pair is the harness's own, for
// its health checks.
type TLS struct {
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
}

// Start starts an etcd member and returns once it is healthy. It is
// stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartTLS is Start with clients served over TLS (Endpoint is https).
func StartTLS(t testing.TB, files TLS) *Server {
	t.Helper()
	return start(t, &files)
}

func start(t testing.TB, files *TLS) *Server {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		need.Missing(t, "etcd is not installed (Debian package etcd-server; test/install-deps.sh installs it): skipping the test that needs a real etcd")
	}
	dir := t.TempDir()
	// The ports are chosen by closing a listener and handing its port on,
	// so another process may take one in between: try a few pairs.
	var lastErr error
	for try := 0; try < 3; try++ {
		s := &Server{t: t, bin: bin, dataDir: filepath.Join(dir, fmt.Sprintf("data%d", try)),
			client: freePort(t), peer: freePort(t), tls: files}
		if lastErr = s.launch(); lastErr == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("etcdserver: etcd logs:\n%s", s.logs.String())
				}
			})
			return s
		}
	}
	t.Fatalf("etcdserver: %v", lastErr)
	return nil
}

// Endpoint is the client URL ("http://127.0.0.1:PORT", https with TLS).
func (s *Server) Endpoint() string {
	if s.tls != nil {
		return "https://" + s.client
	}
	return "http://" + s.client
}

// DataDir is the member's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// Stop ends the member with SIGTERM (SIGKILL after 10 s) and waits for it.
// Stopping a stopped member does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the member with SIGKILL and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Restart starts a stopped member again, on the same ports and data, and
// returns once it is healthy.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("etcdserver: restart: %v", err)
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// launch starts the member and waits until it is healthy. An error means
// it exited first (most likely a port was taken) or never got healthy.
func (s *Server) launch() error {
	logs := &syncbuf.Buffer{}
	args := []string{
		"--name=default",
		"--data-dir=" + s.dataDir,
		"--listen-client-urls=" + s.Endpoint(),
		"--advertise-client-urls=" + s.Endpoint(),
		"--listen-peer-urls=http://" + s.peer,
		"--initial-advertise-peer-urls=http://" + s.peer,
		"--initial-cluster=default=http://" + s.peer,
		"--log-level=warn",
		"--logger=zap",
	}
	client := &http.Client{Timeout: time.Second}
	if f := s.tls; f != nil {
		args = append(args, "--cert-file="+f.ServerCert, "--key-file="+f.ServerKey, "--trusted-ca-file="+f.CAFile, "--client-cert-auth")
		cfg, err := clientTLS(f)
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	// If the test binary dies without running its cleanups, the kernel
	// kills the member rather than leaving it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.logs = cmd, exited, logs
	s.mu.Unlock()

	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("etcd exited before it was healthy (%v): %s", waitErr, logs.String())
		default:
		}
		if healthy(client, s.Endpoint()) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("etcd not healthy within %s: %s", startTimeout, logs.String())
}

// healthy asks the member's /health endpoint.
func healthy(client *http.Client, base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePort returns a loopback host:port nothing listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdserver: find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("etcdserver: free port %s: %v", addr, err)
	}
	return addr
}

// clientTLS is the harness's TLS configuration for its health checks.
func clientTLS(f *TLS) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("load the client pair: %w", err)
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", f.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Handled reads the member's grpc_server_handled_total from its /metrics:
// how many gRPC calls it finished, by "service/method" (for example
// "etcdserverpb.KV/Txn").
func (s *Server) Handled() (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	if f := s.tls; f != nil {
		cfg, err := clientTLS(f)
		if err != nil {
			return nil, err
		}
		client.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	resp, err := client.Get(s.Endpoint() + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("etcdserver: read metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "grpc_server_handled_total{") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			continue
		}
		out[label(l, "grpc_service")+"/"+label(l, "grpc_method")] += v
	}
	return out, sc.Err()
}

// label returns the value of a label in a metric line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// Pid is the running member's process id (0 when stopped).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
