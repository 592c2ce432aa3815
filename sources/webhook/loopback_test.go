package webhook

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/sources"
)

// TestConcurrentDeliveriesOverLoopback sends many signed deliveries at once
// over a real listener, then sends each again at once: every first copy is
// accepted and every second one refused as a replay, whatever the
// interleaving. Run with -race it also checks the handler's shared state.
func TestConcurrentDeliveriesOverLoopback(t *testing.T) {
	r := newRig(t, nil)
	srv := httptest.NewServer(r.mux)
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 10 * time.Second
	defer client.CloseIdleConnections()

	// Distinct deliveries have distinct bodies (a body seen before is a
	// replay whatever its delivery id).
	const n = 40
	headers := make([]http.Header, n)
	bodies := make([][]byte, n)
	for i := range headers {
		bodies[i] = fmt.Appendf(nil, `{"object_kind":"tag_push","ref":"refs/tags/v%d","after":"%040x","project":{"path_with_namespace":"g/p"}}`, i, i+1)
		headers[i] = signed("gitlab", "X-Gitlab-Event: Tag Push Hook", bodies[i])
	}
	send := func() map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i, h := range headers {
			wg.Go(func() {
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/gitlab", bytes.NewReader(bodies[i]))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header = h.Clone()
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	if got := send(); got[http.StatusAccepted] != n {
		t.Fatalf("first round answers %v, want %d × 202", got, n)
	}
	if got := send(); got[http.StatusConflict] != n {
		t.Fatalf("second round answers %v, want %d × 409", got, n)
	}
	if got := len(r.target.events()); got != n {
		t.Errorf("target offered %d events, want %d", got, n)
	}
	if a, rp := r.count("gitlab", "tag_push", ResultAccepted), r.count("gitlab", "tag_push", ResultReplay); a != n || rp != n {
		t.Errorf("counted %v accepted and %v replays, want %d each", a, rp, n)
	}
}

// panicky is a Target that panics, as a buggy source might.
type panicky struct{}

func (panicky) Notify(sources.Event) bool { panic("boom") }

// TestPanickingTargetDoesNotStopOthers offers a push to a panicking target
// and then to a working one: the working one still gets it, and the request
// is answered and counted.
func TestPanickingTargetDoesNotStopOthers(t *testing.T) {
	good := &recorder{match: func(sources.Event) bool { return true }}
	r := newRig(t, func(o *Options) { o.Targets = []Target{panicky{}, good} })
	body := readCorpus(t, "github/push-10.json")
	if got := r.do(t, "github", signed("github", "X-GitHub-Event: push", body), body); got != http.StatusAccepted {
		t.Fatalf("status = %d", got)
	}
	if len(good.events()) != 1 || r.count("github", "push", ResultAccepted) != 1 {
		t.Fatalf("working target got %d events; accepted count %v", len(good.events()), r.count("github", "push", ResultAccepted))
	}
	if !strings.Contains(r.log.String(), "webhook target panicked") {
		t.Errorf("no log line for the panic: %s", r.log.String())
	}
}

// TestSlowSenderTimesOut opens a raw connection, announces a 100-byte body
// and sends 10 bytes: the handler must give up after its read timeout and
// answer 408 instead of holding the connection.
func TestSlowSenderTimesOut(t *testing.T) {
	r := newRig(t, func(o *Options) { o.ReadTimeout = 300 * time.Millisecond })
	srv := httptest.NewServer(r.mux)
	defer srv.Close()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\n" +
		"Content-Length: 100\r\n\r\n0123456789"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status = %d, want 408", resp.StatusCode)
	}
	if waited := time.Since(start); waited > 8*time.Second {
		t.Errorf("answered after %v", waited)
	}
	if got := r.count("github", "unknown", ResultBadRequest); got != 1 {
		t.Errorf("bad_request counted %v times", got)
	}
}
