package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/haproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHAProxyDrain runs against a real HAProxy in front of two loopback
// servers: Out waits for the request in flight on the server it drains,
// no new request reaches that server while it is out, and In brings it
// back.
func TestHAProxyDrain(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, name)
		})
	}
	s1, s2 := httptest.NewServer(handler("s1")), httptest.NewServer(handler("s2"))
	defer s1.Close()
	defer s2.Close()
	// Deferred last, so it runs first: the servers' Close waits for the
	// slow request, which must be let go even when the test fails early.
	defer free()
	lb := haproxy.Start(t, map[string]string{"s1": s1.Listener.Addr().String(), "s2": s2.Listener.Addr().String()}, "s1", "s2")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

	// A slow request holds a session on one of the servers.
	slowDone := make(chan string, 1)
	go func() {
		resp, err := client.Get(lb.URL + "/slow")
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slowDone <- string(b)
	}()
	busy := ""
	for deadline := time.Now().Add(5 * time.Second); busy == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := lb.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"s1", "s2"} {
			if st[n].Sessions == 1 {
				busy = n
			}
		}
	}
	if busy == "" {
		t.Fatal("the slow request never showed as a session in HAProxy")
	}
	other := map[string]string{"s1": "s2", "s2": "s1"}[busy]
	bal := New(&config.Traffic{HAProxy: &config.HAProxyTraffic{Address: lb.Socket, Backend: haproxy.Backend}}, Options{PollInterval: 20 * time.Millisecond})
	host := &config.Host{Name: busy, Address: "127.0.0.1"}

	// With a short timeout Out gives up with ErrNotDrained.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	err := bal.Out(ctx, "prod", host)
	cancel()
	if !errors.Is(err, ErrNotDrained) {
		t.Fatalf("Out with a session open and a short timeout = %v, want ErrNotDrained", err)
	}
	// Then Out waits until the session ends.
	outDone := make(chan error, 1)
	go func() { outDone <- bal.Out(context.Background(), "prod", host) }()
	select {
	case err := <-outDone:
		t.Fatalf("Out returned (%v) while a session was still open", err)
	case <-time.After(400 * time.Millisecond):
	}
	free()
	if got := <-slowDone; got != busy {
		t.Fatalf("the slow request got %q, want an answer from %s", got, busy)
	}
	if err := <-outDone; err != nil {
		t.Fatalf("Out: %v", err)
	}
	st, err := lb.Stats()
	if err != nil || st[busy].Status != "DRAIN" {
		t.Fatalf("stats after Out: %+v %v, want %s in DRAIN", st, err, busy)
	}
	before := st[busy].Total
	for range 10 {
		resp, err := client.Get(lb.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != other {
			t.Fatalf("a request while %s drains was answered by %q", busy, b)
		}
	}
	if err := bal.In(context.Background(), "prod", host); err != nil {
		t.Fatalf("In: %v", err)
	}
	st, _ = lb.Stats()
	// Without health checks a ready server's status is "no check".
	if st[busy].Status != "no check" || st[busy].Total != before {
		t.Fatalf("stats after In: %+v, want %s ready (\"no check\") with %d sessions in total", st[busy], busy, before)
	}

	if err := bal.Out(context.Background(), "prod", &config.Host{Name: "s9"}); err == nil || !strings.Contains(err.Error(), "No such server") {
		t.Errorf("Out of an unknown server = %v", err)
	}
	gone := New(&config.Traffic{HAProxy: &config.HAProxyTraffic{Address: filepath.Join(t.TempDir(), "none.sock"), Backend: "app"}}, Options{})
	if err := gone.In(context.Background(), "prod", host); err == nil || !strings.Contains(err.Error(), "connect to the runtime API") {
		t.Errorf("In through a missing socket = %v", err)
	}
}

func TestParseStat(t *testing.T) {
	out := "# pxname,svname,qcur,qmax,scur,smax,status\nfe,FRONTEND,,,0,1,OPEN\napp,web-1,0,0,2,3,DRAIN\napp,web-2,1,1,0,1,UP\napp,BACKEND,0,0,2,3,UP\nother,web-1,0,0,9,9,UP\n"
	got, err := parseStat(out, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["web-1"] != (ServerStat{Status: "DRAIN", Sessions: 2}) || got["web-2"] != (ServerStat{Status: "UP", Queued: 1}) {
		t.Fatalf("parseStat = %+v", got)
	}
	if _, err := parseStat("Unknown command.\n", "app"); err == nil {
		t.Error("parseStat of an error message succeeded")
	}
}

func TestCommandHooks(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	bal := New(&config.Traffic{Command: &config.TrafficHooks{
		Out: `echo "$DRIFTLESS_TRAFFIC $DRIFTLESS_ENVIRONMENT $DRIFTLESS_HOST $DRIFTLESS_ADDRESS" >> ` + log,
		In:  `echo "$DRIFTLESS_TRAFFIC $DRIFTLESS_HOST" >> ` + log + `; echo balancer refused >&2; exit 3`,
	}}, Options{})
	h := &config.Host{Name: "web-1", Address: "10.0.0.1"}
	if err := bal.Out(context.Background(), "prod", h); err != nil {
		t.Fatal(err)
	}
	if err := bal.In(context.Background(), "prod", h); err == nil || !strings.Contains(err.Error(), "exit 3: balancer refused") {
		t.Fatalf("In = %v", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "out prod web-1 10.0.0.1\nin web-1\n" {
		t.Fatalf("hooks saw %q", b)
	}
}

func TestHTTPHooks(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		if r.URL.Path == "/in" {
			http.Error(w, "pool locked", http.StatusConflict)
		}
	}))
	defer srv.Close()
	bal := New(&config.Traffic{HTTP: &config.TrafficHooks{Out: srv.URL + "/out", In: srv.URL + "/in"}}, Options{})
	h := &config.Host{Name: "web-1", Address: "10.0.0.1"}
	if err := bal.Out(context.Background(), "prod", h); err != nil {
		t.Fatal(err)
	}
	if err := bal.In(context.Background(), "prod", h); err == nil || !strings.Contains(err.Error(), "status 409: pool locked") {
		t.Fatalf("In = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0]["action"] != "out" || got[0]["host"] != "web-1" || got[0]["address"] != "10.0.0.1" || got[0]["environment"] != "prod" || got[1]["action"] != "in" {
		t.Fatalf("hooks got %v", got)
	}
}
