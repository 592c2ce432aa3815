package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

// mailer sends a plain-text email through one SMTP server.
type mailer struct {
	server, host string
	from         *mail.Address
	to           []*mail.Address
	username     string
	password     string
	startTLS     bool
	// implicitTLS speaks TLS from the first byte (SMTPS, RFC 8314), as
	// servers on port 465 expect; STARTTLS is then not used.
	implicitTLS bool
	tls         *tls.Config
	hostname    string
	now         func() time.Time
}

// newMailer checks the addresses and the server and reads the password.
func newMailer(cfg config.Email, opts Options) (*mailer, error) {
	host, port, err := net.SplitHostPort(cfg.Server)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("server %q: want host:port", cfg.Server)
	}
	m := &mailer{server: cfg.Server, host: host, username: cfg.Username, now: opts.Now,
		implicitTLS: port == "465", startTLS: cfg.StartTLS && port != "465"}
	if m.from, err = mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", cfg.From, err)
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("no recipient")
	}
	for _, to := range cfg.To {
		a, err := mail.ParseAddress(to)
		if err != nil {
			return nil, fmt.Errorf("to %q: %w", to, err)
		}
		m.to = append(m.to, a)
	}
	if cfg.Username != "" {
		pw, err := cfg.Password.Read()
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		m.password = string(pw)
	}
	m.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		m.tls = opts.TLSConfig.Clone()
	}
	m.tls.ServerName = host
	m.hostname = opts.Hostname
	if m.hostname == "" {
		if m.hostname, err = os.Hostname(); err != nil || m.hostname == "" {
			m.hostname = "localhost"
		}
	}
	return m, nil
}

// encode writes the RFC 5322 message: headers, then a quoted-printable
// UTF-8 text body, with CRLF line ends.
func (m *mailer) encode(r status.Report) ([]byte, error) {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("make message id: %w", err)
	}
	var to []string
	for _, a := range m.to {
		to = append(to, a.String())
	}
	subject := fmt.Sprintf("driftless: %s %s %s", oneLine(r.Environment), oneLine(r.Status), kit.Abbrev(oneLine(r.Commit)))
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", m.from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", m.now().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(id), m.now().Unix(), oneLine(m.hostname))},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
		{"Auto-Submitted", "auto-generated"},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(mailBody(r), "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return b.Bytes(), nil
}

// mailBody is the text a person reads: the description, the facts, and
// per host what the plan holds when the report carries one.
func mailBody(r status.Report) string {
	var b strings.Builder
	if d := strings.TrimSpace(r.Description); d != "" {
		b.WriteString(d + "\n\n")
	}
	for _, f := range [][2]string{
		{"Environment", r.Environment}, {"Status", r.Status}, {"Commit", r.Commit}, {"Source", r.Source},
		{"Time", r.Time.UTC().Format(time.RFC3339)}, {"Status page", r.URL},
	} {
		if f[1] != "" && !(f[0] == "Time" && r.Time.IsZero()) {
			fmt.Fprintf(&b, "%-12s %s\n", f[0]+":", f[1])
		}
	}
	if r.PullRequest > 0 {
		fmt.Fprintf(&b, "%-12s #%d\n", "Pull request:", r.PullRequest)
	}
	if r.Tests != nil {
		fmt.Fprintf(&b, "%-12s %d run: %s\n", "Tests:", r.Tests.Total(), r.Tests)
	}
	if r.Plan != nil && len(r.Plan.Hosts) > 0 {
		b.WriteString("\nHosts:\n")
		for _, h := range r.Plan.Hosts {
			fmt.Fprintf(&b, "  %s: %s\n", h.Host, hostSummary(h))
		}
	}
	return b.String()
}

// hostSummary is "2 to change, 5 unchanged", or why the host was not observed.
func hostSummary(h status.HostPlan) string {
	if h.Err != "" {
		return "not observed: " + oneLine(h.Err)
	}
	changed := 0
	for _, c := range h.Changes {
		if c.Action != "" && c.Action != "none" {
			changed++
		}
	}
	return fmt.Sprintf("%d to change, %d unchanged", changed, len(h.Changes)-changed)
}

// oneLine keeps a value from breaking out of its header line.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// send runs one SMTP exchange: EHLO, STARTTLS when asked, AUTH PLAIN when
// a username is set, MAIL, RCPT for each recipient, DATA, QUIT. The
// connection's deadline is the context's, so a silent server cannot hold
// the notifier past its timeout.
func (m *mailer) send(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.server)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", m.server, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if m.implicitTLS {
		tc := tls.Client(conn, m.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return smtpError("TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return smtpError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(m.hostname); err != nil {
		return smtpError("EHLO", err)
	}
	if m.startTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return kit.Permanent(fmt.Errorf("%s does not offer STARTTLS", m.server))
		}
		if err := c.StartTLS(m.tls); err != nil {
			return smtpError("STARTTLS", err)
		}
	}
	if m.username != "" {
		// net/smtp refuses to send the password over a connection that is
		// neither TLS nor to localhost: that refusal is permanent.
		if err := c.Auth(smtp.PlainAuth("", m.username, m.password, m.host)); err != nil {
			return smtpError("AUTH", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return smtpError("MAIL FROM", err)
	}
	for _, a := range m.to {
		if err := c.Rcpt(a.Address); err != nil {
			return smtpError("RCPT TO "+a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpError("end of DATA", err)
	}
	// The message was accepted at the end of DATA; a failed QUIT loses nothing.
	_ = c.Quit()
	return nil
}

// smtpError wraps an SMTP failure; a 5xx reply is permanent (RFC 5321),
// a 4xx or a broken connection is worth another attempt.
func smtpError(step string, err error) error {
	err = fmt.Errorf("smtp %s: %w", step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return kit.Permanent(err)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return kit.Permanent(err)
	}
	if strings.Contains(err.Error(), "unencrypted connection") || strings.Contains(err.Error(), "wrong host name") {
		return kit.Permanent(err)
	}
	return err
}
