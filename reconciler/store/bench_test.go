package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/driftless/driftless/sources"
	"github.com/driftless/driftless/sources/webhook"
)

// Sizes of the intake benchmark.
const (
	// intakeClients is how many keep-alive clients send at once.
	intakeClients = 64
	// intakeRound is how many requests one side serves before the other
	// side's turn: the two alternate, so that a burst of load from
	// elsewhere on the machine weighs on both alike.
	intakeRound = 2000
	// intakeRounds is how many rounds each side serves per b.N.
	intakeRounds = 5
)

// takeAll is a webhook target following every repository, as a Git source
// following the pushed one would; it only counts.
type takeAll struct{ n atomic.Int64 }

func (t *takeAll) Notify(sources.Event) bool { t.n.Add(1); return true }

// BenchmarkWebhookIntake compares the daemon's webhook intake (routing,
// body read, HMAC, decode, replay check in the embedded store, durable
// before the answer, target, metric, log line) with the floor: a bare
// net/http server that reads the body and checks the same HMAC. Both serve
// signed GitHub pushes, each a new delivery, from 64 concurrent
// keep-alive clients, in alternating rounds of the same run; with the
// store's delivery window empty, then holding 200,000 deliveries. It
// reports each side's requests per second, p50 and p99 latency,
// ratio = floor req/s / daemon req/s, and the pages the store wrote per
// request.
//
//	go test -run '^$' -bench WebhookIntake -benchtime 1x ./reconciler/store/
func BenchmarkWebhookIntake(b *testing.B) {
	secret := []byte("bench-intake-secret")
	push, err := os.ReadFile(filepath.Join("..", "..", "sources", "webhook", "testdata", "github", "push-9.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, held := range []int{0, 200_000} {
		b.Run(fmt.Sprintf("window=%d", held), func(b *testing.B) {
			store := openTestStore(b)
			fillDeliveries(b, store, held)
			target := &takeAll{}
			h := webhook.NewHandler(webhook.Options{
				Secrets:    webhook.Secrets{GitHub: secret},
				Deliveries: store,
				Targets:    []webhook.Target{target},
				Logger:     zerolog.New(io.Discard).With().Timestamp().Logger(),
				Registerer: prometheus.NewRegistry(),
			})
			mux := http.NewServeMux()
			h.Register(mux)
			daemon := httptest.NewServer(mux)
			defer daemon.Close()
			floor := httptest.NewServer(bareHMAC(secret))
			defer floor.Close()

			st := store.db.Stats()
			pagesBefore := st.TxStats.GetWrite()
			gen := newSignedPushes(b, push, secret)
			clients := [2]*http.Client{keepAliveClient(b), keepAliveClient(b)}
			var sides [2]intakeSide
			for r := range intakeRounds * b.N {
				// The side that goes first alternates too.
				for i := range 2 {
					s := (r + i) % 2
					url := floor.URL + "/hooks/github"
					if s == 1 {
						url = daemon.URL + "/hooks/github"
					}
					sides[s].add(sendRound(b, clients[s], url, gen, intakeRound))
				}
			}
			if got := target.n.Load(); got != int64(intakeRound*intakeRounds*b.N) {
				b.Fatalf("target took %d pushes, want %d", got, intakeRound*intakeRounds*b.N)
			}
			bare, dmn := sides[0].rate(), sides[1].rate()
			b.ReportMetric(bare, "floor_req/s")
			b.ReportMetric(dmn, "daemon_req/s")
			b.ReportMetric(bare/dmn, "ratio")
			b.ReportMetric(ms(sides[0].percentile(50)), "floor_p50_ms")
			b.ReportMetric(ms(sides[0].percentile(99)), "floor_p99_ms")
			b.ReportMetric(ms(sides[1].percentile(50)), "daemon_p50_ms")
			b.ReportMetric(ms(sides[1].percentile(99)), "daemon_p99_ms")
			// Pages the store wrote per request: what a request costs the
			// disk, and what would grow if it depended on the window.
			st = store.db.Stats()
			b.ReportMetric(float64(st.TxStats.GetWrite()-pagesBefore)/float64(len(sides[1].lat)), "pages/req")
		})
	}
}

// bareHMAC is the floor: it reads the body as the daemon does (capped),
// checks GitHub's SHA-256 signature, and answers 202.
func bareHMAC(secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.DefaultMaxBodyBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got, err := hex.DecodeString(strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="))
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "accepted\n")
	})
}

// signedPushes makes GitHub pushes that are each a new delivery: another
// "after" commit (so another body hash) and another delivery id.
type signedPushes struct {
	orig, after []byte
	secret      []byte
	nonce       string
	seq         atomic.Int64
}

func newSignedPushes(b *testing.B, orig, secret []byte) *signedPushes {
	const after = "199eddf46df50de8d02e99bf1c5fdb4101338224"
	if !bytes.Contains(orig, []byte(after)) {
		b.Fatal("push-9.json changed")
	}
	return &signedPushes{orig: orig, after: []byte(after), secret: secret, nonce: rand.Text()[:8]}
}

func (g *signedPushes) next(url string) (*http.Request, error) {
	i := g.seq.Add(1)
	body := bytes.Replace(g.orig, g.after, fmt.Appendf(nil, "%032x%08x", i, i), 1)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%s-%d", g.nonce, i))
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHex(g.secret, body))
	return req, nil
}

// intakeSide sums one side's rounds.
type intakeSide struct {
	elapsed time.Duration
	lat     []time.Duration
}

func (s *intakeSide) add(elapsed time.Duration, lat []time.Duration) {
	s.elapsed += elapsed
	s.lat = append(s.lat, lat...)
}

func (s *intakeSide) rate() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s *intakeSide) percentile(p int) time.Duration {
	slices.Sort(s.lat)
	rank := max((p*len(s.lat)+99)/100, 1)
	return s.lat[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sendRound sends n requests from intakeClients keep-alive clients and
// returns the wall time and each request's latency; every answer must be 202.
func sendRound(b *testing.B, client *http.Client, url string, gen *signedPushes, n int) (time.Duration, []time.Duration) {
	var left atomic.Int64
	left.Store(int64(n))
	lats := make([][]time.Duration, intakeClients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range intakeClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				req, err := gen.next(url)
				if err != nil {
					b.Error(err)
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				lats[c] = append(lats[c], time.Since(t0))
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("%s: status %d", url, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if b.Failed() {
		b.FailNow()
	}
	return elapsed, slices.Concat(lats...)
}

// keepAliveClient keeps up to intakeClients connections open between
// requests and rounds.
func keepAliveClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: intakeClients, MaxConnsPerHost: intakeClients}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// fillDeliveries records n deliveries (an id and a body hash each), seen
// over the last 23 hours, so that all of them are in the default window.
func fillDeliveries(b *testing.B, s *BoltStore, n int) {
	b.Helper()
	now := time.Now()
	const chunk = 10_000
	for done := 0; done < n; done += chunk {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := done; i < min(done+chunk, n); i++ {
				at := now.Add(-23 * time.Hour * time.Duration(n-i) / time.Duration(n)).UnixNano()
				sum := sha256.Sum256(fmt.Appendf(nil, "old body %d", i))
				for _, k := range []string{"body-sha256:" + hex.EncodeToString(sum[:]), fmt.Sprintf("old-delivery-%d", i)} {
					if err := s.putDelivery(tx, "github", k, at); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarkDelivery is the webhook replay check on a store holding
// 1000 recent deliveries.
func BenchmarkMarkDelivery(b *testing.B) {
	s := openTestStore(b)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		if _, err := s.MarkDelivery("github", []string{fmt.Sprint("old-", i)}, now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		i++
		if seen, err := s.MarkDelivery("github", []string{fmt.Sprint("new-", i)}, now, time.Hour); err != nil || seen {
			b.Fatal(seen, err)
		}
	}
}
