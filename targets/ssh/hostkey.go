package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyCheck returns the callback that verifies the server's key, and the
// host key algorithms to ask for so the server presents the kind of key
// that is recorded (a server with several keys would otherwise present one
// we cannot compare).
func (c Config) hostKeyCheck() (gossh.HostKeyCallback, []string, error) {
	if c.PinnedKey != "" {
		pinned, _, _, _, err := gossh.ParseAuthorizedKey([]byte(c.PinnedKey))
		if err != nil {
			return nil, nil, fmt.Errorf("parse pinned host key of %s: %w", c.Address, err)
		}
		cb := func(host string, _ net.Addr, key gossh.PublicKey) error {
			if bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			return fmt.Errorf("%w: %s presented %s %s, but the pinned key is %s %s; refusing to connect",
				ErrHostKeyMismatch, host, key.Type(), gossh.FingerprintSHA256(key), pinned.Type(), gossh.FingerprintSHA256(pinned))
		}
		return cb, algorithmsFor([]string{pinned.Type()}), nil
	}
	if _, err := os.Stat(c.KnownHostsFile); errors.Is(err, os.ErrNotExist) && c.TrustOnFirstUse {
		if err := os.MkdirAll(filepath.Dir(c.KnownHostsFile), 0o700); err != nil {
			return nil, nil, fmt.Errorf("create folder of %s: %w", c.KnownHostsFile, err)
		}
		if err := os.WriteFile(c.KnownHostsFile, nil, 0o600); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", c.KnownHostsFile, err)
		}
	}
	kh, err := knownhosts.New(c.KnownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read known hosts %s: %w", c.KnownHostsFile, err)
	}
	file := c.KnownHostsFile
	cb := func(host string, remote net.Addr, key gossh.PublicKey) error {
		err := kh(host, remote, key)
		var ke *knownhosts.KeyError
		if err == nil || !errors.As(err, &ke) {
			return err
		}
		if len(ke.Want) > 0 {
			known := ke.Want[0]
			return fmt.Errorf("%w: %s presented %s %s, but %s:%d records %s %s; refusing to connect (the host was reinstalled, or someone is in the middle)",
				ErrHostKeyMismatch, host, key.Type(), gossh.FingerprintSHA256(key), known.Filename, known.Line, known.Key.Type(), gossh.FingerprintSHA256(known.Key))
		}
		if !c.TrustOnFirstUse {
			return fmt.Errorf("%w: %s presented %s %s, which is not in %s; add it there, pin it, or enable trust on first use",
				ErrHostKeyUnknown, host, key.Type(), gossh.FingerprintSHA256(key), file)
		}
		return appendKnownHost(file, host, key)
	}
	return cb, recordedAlgorithms(kh, c.hostPort()), nil
}

// appendKnownHost records a key seen for the first time. The file lock
// keeps hosts trusted at the same moment (by this or another process) from
// interleaving their lines.
func appendKnownHost(file, host string, key gossh.PublicKey) error {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", host, file, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", file, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(host)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", host, file, err)
	}
	return f.Sync()
}

// recordedAlgorithms asks the known_hosts callback which key types it has
// for the host, by offering it a throw-away key it cannot know; nil (the
// library's defaults) when the host is not recorded.
func recordedAlgorithms(kh gossh.HostKeyCallback, hostPort string) []string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := gossh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := kh(hostPort, &net.TCPAddr{IP: net.IPv4zero}, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var types []string
	for _, k := range ke.Want {
		types = append(types, k.Key.Type())
	}
	return algorithmsFor(types)
}

// algorithmsFor lists the signature algorithms that can carry keys of the given types.
func algorithmsFor(types []string) []string {
	var algos []string
	seen := map[string]bool{}
	for _, t := range types {
		list := []string{t}
		if t == gossh.KeyAlgoRSA {
			list = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		for _, a := range list {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// Fingerprint is the SHA256 fingerprint OpenSSH shows for a key ("SHA256:...").
func Fingerprint(k gossh.PublicKey) string { return gossh.FingerprintSHA256(k) }
