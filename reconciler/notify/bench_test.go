package notify

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// BenchmarkWebhookReport is one JSON notice delivered to a local receiver.
func BenchmarkWebhookReport(b *testing.B) {
	rc := &receiver{}
	srv := rc.start(b)
	rps, err := New(config.Notify{Webhooks: []config.NotifyWebhook{{URL: srv.URL}}},
		Options{HTTPClient: srv.Client(), Backoff: fastBackoff, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	r := testReport(status.StatusSuccess, "applied 3 change(s)")
	for b.Loop() {
		rps[0].Report(context.Background(), r)
	}
	if rc.count() < b.N {
		b.Fatalf("delivered %d of %d", rc.count(), b.N)
	}
}

// BenchmarkEmailReport is one full SMTP exchange (connect, EHLO, AUTH
// PLAIN, MAIL, RCPT, DATA, QUIT) with the test's SMTP server.
func BenchmarkEmailReport(b *testing.B) {
	srv := startSMTP(b, &smtpServer{user: "u", pass: "p"})
	rps, err := New(config.Notify{Email: &config.Email{Server: srv.addr(), From: "d@example.org", To: []string{"ops@example.org"},
		Username: "u", Password: passwordFile(b, "p")}}, Options{Backoff: fastBackoff, Logger: zerolog.Nop(), Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	r := testReport(status.StatusRolledBack, "rolled back: verification failed")
	for b.Loop() {
		rps[0].Report(context.Background(), r)
	}
	if n := len(srv.messages()); n < b.N {
		b.Fatalf("delivered %d of %d", n, b.N)
	}
}
