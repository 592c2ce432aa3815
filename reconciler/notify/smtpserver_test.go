package notify

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a minimal but real SMTP server on a loopback listener:
// EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA with dot-unstuffing, RSET,
// NOOP and QUIT, as RFC 5321 and RFC 4954 describe them.
type smtpServer struct {
	t   testing.TB
	ln  net.Listener
	tls *tls.Config // when set, STARTTLS is offered
	// implicit speaks TLS from the first byte with the tls config (SMTPS).
	implicit bool
	user     string // when set, AUTH PLAIN is offered and required
	pass     string

	mu sync.Mutex
	// rejectData answers 451 at the end of the next N messages.
	rejectData int
	attempts   int
	received   []mailReceived
	wg         sync.WaitGroup
}

// mailReceived is one accepted message with its envelope.
type mailReceived struct {
	Helo, From, AuthUser string
	To                   []string
	TLS                  bool
	Data                 string
}

func startSMTP(t testing.TB, s *smtpServer) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.t, s.ln = t, ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) messages() []mailReceived {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mailReceived(nil), s.received...)
}

func (s *smtpServer) dataAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

func (s *smtpServer) serve(conn net.Conn) {
	defer func() { conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var m mailReceived
	if s.implicit {
		tc := tls.Server(conn, s.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		conn, m.TLS = tc, true
	}
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	reply := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		w.Flush()
	}
	reply("220 127.0.0.1 ESMTP test")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			m.Helo = arg
			ext := []string{"250-127.0.0.1 greets " + arg}
			if s.tls != nil && !m.TLS {
				ext = append(ext, "250-STARTTLS")
			}
			if s.user != "" {
				ext = append(ext, "250-AUTH PLAIN")
			}
			reply(append(ext, "250 8BITMIME")...)
		case "STARTTLS":
			if s.tls == nil || m.TLS {
				reply("502 not offered")
				continue
			}
			reply("220 ready to start TLS")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn = tc
			r, w = bufio.NewReader(conn), bufio.NewWriter(conn)
			// RFC 3207: the session starts over after the handshake.
			m = mailReceived{TLS: true}
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			if s.user == "" || !strings.EqualFold(mech, "PLAIN") {
				reply("504 unrecognised mechanism")
				continue
			}
			if initial == "" {
				reply("334 ")
				if initial, err = r.ReadString('\n'); err != nil {
					return
				}
				initial = strings.TrimRight(initial, "\r\n")
			}
			raw, err := base64.StdEncoding.DecodeString(initial)
			parts := strings.Split(string(raw), "\x00")
			if err != nil || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				reply("535 5.7.8 authentication credentials invalid")
				continue
			}
			m.AuthUser = parts[1]
			reply("235 2.7.0 authentication successful")
		case "MAIL":
			if s.user != "" && m.AuthUser == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			from, ok := envelopeAddr(arg, "FROM:")
			if !ok {
				reply("501 5.5.4 syntax: MAIL FROM:<address>")
				continue
			}
			m.From = from
			reply("250 ok")
		case "RCPT":
			to, ok := envelopeAddr(arg, "TO:")
			if !ok || m.From == "" {
				reply("503 5.5.1 need MAIL FROM:<address> then RCPT TO:<address>")
				continue
			}
			m.To = append(m.To, to)
			reply("250 ok")
		case "DATA":
			if len(m.To) == 0 {
				reply("503 5.5.1 no recipients")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				// Dot-unstuffing (RFC 5321 4.5.2).
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = data.String()
			s.mu.Lock()
			s.attempts++
			reject := s.rejectData > 0
			if reject {
				s.rejectData--
			} else {
				s.received = append(s.received, m)
			}
			s.mu.Unlock()
			if reject {
				reply("451 4.3.0 try again later")
			} else {
				reply("250 2.0.0 queued")
			}
			m = mailReceived{Helo: m.Helo, TLS: m.TLS, AuthUser: m.AuthUser}
		case "RSET":
			m = mailReceived{Helo: m.Helo, TLS: m.TLS, AuthUser: m.AuthUser}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 command not implemented")
		}
	}
}

// envelopeAddr parses "FROM:<a@b> BODY=8BITMIME" into "a@b".
func envelopeAddr(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	path, _, _ := strings.Cut(strings.TrimSpace(arg[len(prefix):]), " ")
	if !strings.HasPrefix(path, "<") || !strings.HasSuffix(path, ">") {
		return "", false
	}
	return path[1 : len(path)-1], true
}

// testCert makes a self-signed certificate for 127.0.0.1 and the pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
