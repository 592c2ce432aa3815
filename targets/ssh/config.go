// Package ssh is the SSH transport: one multiplexed connection per host,
// host keys always checked (known_hosts, a pinned key, or explicit
// trust-on-first-use), keepalives, one reconnect when the connection
// dropped, and a timeout on every operation.
package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Config says how to reach one host. The zero values of Port, User,
// Timeout and Keepalive mean 22, root, 30 s and 15 s.
type Config struct {
	// Address is the host name or IP address.
	Address string
	// Port is the SSH port.
	Port int
	// User is the remote login.
	User string
	// KeyFiles are unencrypted private keys (OpenSSH or PEM format).
	KeyFiles []string
	// Agent also offers the keys of the ssh-agent at SSH_AUTH_SOCK.
	Agent bool
	// KnownHostsFile is checked for the host key; empty means
	// ~/.ssh/known_hosts unless PinnedKey is set.
	KnownHostsFile string
	// PinnedKey, in authorized_keys format, is the only host key accepted.
	PinnedKey string
	// TrustOnFirstUse accepts a host absent from KnownHostsFile and
	// appends its key there. A changed key is still refused.
	TrustOnFirstUse bool
	// Sudo runs every command through `sudo -n` (a non-root User with
	// passwordless sudo).
	Sudo bool
	// Timeout bounds the connection, each keepalive, and every operation
	// whose context carries no deadline of its own (a caller's deadline,
	// longer or shorter, governs its operation).
	Timeout time.Duration
	// Keepalive is the interval of keepalive@openssh.com requests; a
	// negative value disables them.
	Keepalive time.Duration
	// MaxSessions caps the commands running at once on the connection;
	// 0 means 8, below OpenSSH's default MaxSessions of 10, so that the
	// one extra session a timeout needs to kill its script still fits.
	MaxSessions int
	// Logger receives connection events.
	Logger zerolog.Logger
}

// Errors a caller may test with errors.Is.
var (
	// ErrHostKeyUnknown means the host is not in known_hosts and trust on first use is off.
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyMismatch means the host presented a key other than the one recorded or pinned.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrClosed means the transport was closed.
	ErrClosed = errors.New("transport closed")
)

// withDefaults fills zero fields and checks what cannot be defaulted.
func (c Config) withDefaults() (Config, error) {
	if c.Address == "" {
		return c, errors.New("ssh: no address")
	}
	if c.Port == 0 {
		c.Port = 22
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("ssh %s: port %d out of range", c.Address, c.Port)
	}
	if c.User == "" {
		c.User = "root"
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Keepalive == 0 {
		c.Keepalive = 15 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 8
	}
	if c.KnownHostsFile == "" && c.PinnedKey == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return c, fmt.Errorf("ssh %s: no known_hosts file given and no home folder: %w", c.Address, err)
		}
		c.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if len(c.KeyFiles) == 0 && !c.Agent {
		return c, fmt.Errorf("ssh %s: no key files and no agent: nothing to authenticate with", c.Address)
	}
	return c, nil
}

// hostPort is the dial address.
func (c Config) hostPort() string { return net.JoinHostPort(c.Address, strconv.Itoa(c.Port)) }

// authMethods loads the key files and, when asked, the agent's keys. The
// returned closer ends the agent connection once the handshake is over.
func (c Config) authMethods() ([]gossh.AuthMethod, func(), error) {
	var signers []gossh.Signer
	for _, f := range c.KeyFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read ssh key %s: %w", f, err)
		}
		s, err := gossh.ParsePrivateKey(pem)
		if err != nil {
			return nil, nil, fmt.Errorf("parse ssh key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	closer := func() {}
	if c.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, nil, errors.New("ssh agent requested but SSH_AUTH_SOCK is not set")
		}
		conn, err := net.DialTimeout("unix", sock, c.Timeout)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to ssh agent: %w", err)
		}
		closer = func() { conn.Close() }
		as, err := agent.NewClient(conn).Signers()
		if err != nil {
			closer()
			return nil, nil, fmt.Errorf("list ssh agent keys: %w", err)
		}
		signers = append(signers, as...)
	}
	if len(signers) == 0 {
		closer()
		return nil, nil, fmt.Errorf("ssh %s: no usable key (key files empty, agent has none)", c.Address)
	}
	return []gossh.AuthMethod{gossh.PublicKeys(signers...)}, closer, nil
}

// clientConfig builds the x/crypto client configuration: curve25519 key
// exchange first (measurably faster than the post-quantum default) and the
// host key check.
func (c Config) clientConfig(auth []gossh.AuthMethod) (*gossh.ClientConfig, error) {
	check, algos, err := c.hostKeyCheck()
	if err != nil {
		return nil, err
	}
	cc := &gossh.ClientConfig{
		User:              c.User,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           c.Timeout,
		ClientVersion:     "SSH-2.0-driftless",
	}
	cc.KeyExchanges = []string{
		gossh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org",
		gossh.KeyExchangeMLKEM768X25519,
		gossh.KeyExchangeECDHP256, gossh.KeyExchangeECDHP384, gossh.KeyExchangeECDHP521,
		gossh.KeyExchangeDH16SHA512, gossh.KeyExchangeDH14SHA256,
	}
	return cc, nil
}
