package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

func emailNotifier(t *testing.T, cfg config.Email, opts Options) *Notifier {
	t.Helper()
	if opts.Backoff.Initial == 0 {
		opts.Backoff = fastBackoff
	}
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t))
	opts.Hostname = "driftless.test"
	rps, err := New(config.Notify{Email: &cfg}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rps[0].(*Notifier)
}

func passwordFile(t testing.TB, pw string) config.Secret {
	p := filepath.Join(t.TempDir(), "smtp.password")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Secret{File: p}
}

func TestEmailDelivered(t *testing.T) {
	srv := startSMTP(t, &smtpServer{user: "driftless", pass: "hunter2"})
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	n := emailNotifier(t, config.Email{
		Server: srv.addr(), From: "driftless <driftless@example.org>", To: []string{"ops@example.org", "Dev Team <dev@example.org>"},
		Username: "driftless", Password: passwordFile(t, "hunter2"),
	}, Options{Now: func() time.Time { return now }})

	r := testReport(status.StatusRolledBack, "rolled back: verification failed\n.a line that starts with a dot\n")
	r.Plan = &status.Plan{Hosts: []status.HostPlan{
		{Host: "web-1", Changes: []targets.Change{{ID: "file:/a", Action: targets.Update}, {ID: "service:app", Action: targets.NoChange}}},
		{Host: "web-2", Err: "connection refused"},
	}}
	r.Tests = &verify.Tests{Passed: 2, Failed: 2, Skipped: 1}
	n.Report(context.Background(), r)

	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("messages: %d, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "driftless@example.org" || strings.Join(got.To, ",") != "ops@example.org,dev@example.org" {
		t.Errorf("envelope: from %q to %q", got.From, got.To)
	}
	if got.AuthUser != "driftless" || got.Helo != "driftless.test" {
		t.Errorf("auth user %q, helo %q", got.AuthUser, got.Helo)
	}
	msg, err := mail.ReadMessage(strings.NewReader(got.Data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, got.Data)
	}
	h := msg.Header
	for k, want := range map[string]string{
		"Subject":                   "driftless: staging rolled_back 0123456",
		"From":                      `"driftless" <driftless@example.org>`,
		"To":                        `<ops@example.org>, "Dev Team" <dev@example.org>`,
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if id := h.Get("Message-Id"); !regexp.MustCompile(`^<[0-9a-f]{24}\.\d+@driftless\.test>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rolled back: verification failed\r\n.a line that starts with a dot\r\n",
		"Environment: staging\r\n", "Commit:      " + sha + "\r\n", "Status page: http://driftless.test/environments/staging",
		"web-1: 1 to change, 1 unchanged\r\n", "web-2: not observed: connection refused\r\n",
		"Tests:       5 run: 2 passed, 2 failed, 0 errored, 1 skipped\r\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestEmailStartTLS(t *testing.T) {
	cert, pool := testCert(t)
	srv := startSMTP(t, &smtpServer{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, user: "u", pass: "p"})
	n := emailNotifier(t, config.Email{Server: srv.addr(), From: "d@example.org", To: []string{"ops@example.org"},
		Username: "u", Password: passwordFile(t, "p"), StartTLS: true}, Options{TLSConfig: &tls.Config{RootCAs: pool}})
	n.Report(context.Background(), testReport(status.StatusFailure, "failed: apply file:/a on web-1"))
	msgs := srv.messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "u" {
		t.Fatalf("messages: %+v", msgs)
	}

	// A server that cannot be trusted gets nothing, and is not retried.
	untrusted := emailNotifier(t, config.Email{Server: srv.addr(), From: "d@example.org", To: []string{"ops@example.org"},
		Username: "u", Password: passwordFile(t, "p"), StartTLS: true}, Options{})
	untrusted.Report(context.Background(), testReport(status.StatusFailure, "x"))
	if len(srv.messages()) != 1 {
		t.Error("a message went to a server with an untrusted certificate")
	}
}

func TestEmailImplicitTLS(t *testing.T) {
	cert, pool := testCert(t)
	srv := startSMTP(t, &smtpServer{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, implicit: true, user: "u", pass: "p"})
	n := emailNotifier(t, config.Email{Server: srv.addr(), From: "d@example.org", To: []string{"ops@example.org"},
		Username: "u", Password: passwordFile(t, "p")}, Options{TLSConfig: &tls.Config{RootCAs: pool}})
	// The test server cannot listen on 465; port 465 is what selects SMTPS.
	m := n.s.(*mailer)
	if m.implicitTLS {
		t.Fatal("implicit TLS on a port other than 465")
	}
	m.implicitTLS = true
	n.Report(context.Background(), testReport(status.StatusFailure, "failed"))
	if msgs := srv.messages(); len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "u" {
		t.Fatalf("messages: %+v", msgs)
	}
	m465, err := newMailer(config.Email{Server: "smtp.example:465", From: "a@b.c", To: []string{"d@e.f"}, StartTLS: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m465.implicitTLS || m465.startTLS {
		t.Errorf("port 465: implicit %v, starttls %v", m465.implicitTLS, m465.startTLS)
	}
}

func TestEmailRefusals(t *testing.T) {
	tests := []struct {
		name         string
		srv          *smtpServer
		cfg          config.Email
		wantAttempts int
	}{
		{"no STARTTLS offered", &smtpServer{}, config.Email{StartTLS: true}, 0},
		{"wrong password", &smtpServer{user: "u", pass: "right"}, config.Email{Username: "u"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, tt.srv)
			cfg := tt.cfg
			cfg.Server, cfg.From, cfg.To = srv.addr(), "d@example.org", []string{"ops@example.org"}
			if cfg.Username != "" {
				cfg.Password = passwordFile(t, "wrong")
			}
			start := time.Now()
			emailNotifier(t, cfg, Options{Backoff: slowBackoff}).Report(context.Background(), testReport(status.StatusFailure, "x"))
			// A permanent refusal is not retried: the slow backoff's first wait never happens.
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v: a permanent refusal was retried", d)
			}
			if len(srv.messages()) != 0 || srv.dataAttempts() != tt.wantAttempts {
				t.Errorf("messages %d, attempts %d", len(srv.messages()), srv.dataAttempts())
			}
		})
	}
}

func TestEmailRetriedAfterTemporaryFailure(t *testing.T) {
	srv := startSMTP(t, &smtpServer{rejectData: 2})
	n := emailNotifier(t, config.Email{Server: srv.addr(), From: "d@example.org", To: []string{"ops@example.org"}}, Options{})
	n.Report(context.Background(), testReport(status.StatusDrift, "2 resource(s) drifted"))
	if srv.dataAttempts() != 3 {
		t.Errorf("attempts: %d, want 3", srv.dataAttempts())
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("messages: %d", len(msgs))
	}
	if m, err := mail.ReadMessage(strings.NewReader(msgs[0].Data)); err != nil || m.Header.Get("Subject") != "driftless: staging drift 0123456" {
		t.Errorf("message: %v %v", m, err)
	}
}

func TestEmailConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Email
		want string
	}{
		{"server without port", config.Email{Server: "smtp.example", From: "a@b.c", To: []string{"d@e.f"}}, "want host:port"},
		{"bad from", config.Email{Server: "h:25", From: "not an address", To: []string{"d@e.f"}}, "from"},
		{"bad to", config.Email{Server: "h:25", From: "a@b.c", To: []string{"d@e.f", "x"}}, `to "x"`},
		{"no to", config.Email{Server: "h:25", From: "a@b.c"}, "no recipient"},
		{"password missing", config.Email{Server: "h:25", From: "a@b.c", To: []string{"d@e.f"}, Username: "u",
			Password: config.Secret{Env: "DRIFTLESS_TEST_NO_SUCH_VARIABLE"}}, "password"},
		{"unknown event", config.Email{Server: "h:25", From: "a@b.c", To: []string{"d@e.f"}, Events: []string{"explosion"}}, `unknown event "explosion"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(config.Notify{Email: &tt.cfg}, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzEmailEncode feeds outside text (environment names, error
// descriptions from hosts) into the message: it must always parse as one
// RFC 5322 message whose headers nothing injected into.
func FuzzEmailEncode(f *testing.F) {
	f.Add("staging", "failed: x", sha, "web-1")
	f.Add("a\r\nBcc: evil@example.org", ".\r\n.\r\nQUIT\r\n", "zz\nX: y", "h\r\n")
	m, err := newMailer(config.Email{Server: "127.0.0.1:25", From: "d@example.org", To: []string{"ops@example.org"}},
		Options{Hostname: "fuzz", Now: time.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, env, desc, commit, host string) {
		r := status.Report{Environment: env, Description: desc, Commit: commit, Status: status.StatusFailure,
			Plan: &status.Plan{Hosts: []status.HostPlan{{Host: host, Err: desc}}}}
		data, err := m.encode(r)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("message does not parse: %v", err)
		}
		if len(msg.Header) != 9 || msg.Header.Get("Bcc") != "" {
			t.Fatalf("headers were injected: %v", msg.Header)
		}
		if _, err := io.ReadAll(quotedprintable.NewReader(msg.Body)); err != nil {
			t.Fatalf("body: %v", err)
		}
	})
}
