package verify

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/promserver"
)

// TestPrometheusReal queries a real Prometheus server scraping a gauge
// this test serves and sets.
func TestPrometheusReal(t *testing.T) {
	reg := prometheus.NewRegistry()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "verify_test_ready_replicas", Help: "Set by the test."})
	reg.MustRegister(gauge)
	gauge.Set(5)
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()
	server := promserver.Start(t, metrics.URL+"/metrics")
	badGateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>upstream down</html>", http.StatusBadGateway)
	}))
	defer badGateway.Close()

	q := func(query, op string, threshold float64) config.Check {
		return config.Check{Prometheus: query, Server: server, Op: op, Threshold: threshold}
	}
	for _, tc := range []struct {
		name     string
		check    config.Check
		ok       bool
		attempts int
		reason   []string
	}{
		{"default op is > 0", q("verify_test_ready_replicas", "", 0), true, 1, []string{"5 > 0"}},
		{"below threshold", q("verify_test_ready_replicas", "<", 3), false, 1, []string{"expected a value < 3, got 5"}},
		{">= passes", q("verify_test_ready_replicas", ">=", 5), true, 1, nil},
		{"== passes", q("verify_test_ready_replicas", "==", 5), true, 1, nil},
		{"!= fails", q("verify_test_ready_replicas", "!=", 5), false, 1, []string{"expected a value != 5, got 5"}},
		{"<= passes", q("verify_test_ready_replicas", "<=", 5.5), true, 1, nil},
		{"scalar result", q("scalar(verify_test_ready_replicas) * 2", ">", 9), true, 1, []string{"10 > 9"}},
		{"sum over labels", q(`sum(up{job="target0"})`, "==", 1), true, 1, nil},
		{"bad query", q("sum((verify_test_ready_replicas", "", 0), false, 1, []string{"prometheus says bad_data", "parse error"}},
		{"empty result", q("verify_test_absent_metric", "", 0), false, 1, []string{"no sample (empty result)"}},
		{"range vector", q("verify_test_ready_replicas[1m]", "", 0), false, 1, []string{"result type matrix"}},
		{"server down", config.Check{Prometheus: "up", Server: "http://" + closedPort(t)}, false, 1, []string{"connection refused"}},
		{"not json", config.Check{Prometheus: "up", Server: metrics.URL}, false, 1, []string{"parse response"}},
		{"proxy error page", config.Check{Prometheus: "up", Server: badGateway.URL}, false, 1, []string{"status 502", "upstream down"}},
		{"bad op", q("up", "=>", 1), false, 0, []string{`op: "=>"`}},
		{"no server", config.Check{Prometheus: "up"}, false, 0, []string{"a prometheus check needs server"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRunner(t)
			res := r.Check(context.Background(), tc.check, &config.Host{Name: "web-1"}, nil)
			if res.OK != tc.ok || res.Attempts != tc.attempts || res.Kind != "prometheus" {
				t.Fatalf("got %+v, want ok=%v attempts=%d", res, tc.ok, tc.attempts)
			}
			for _, want := range tc.reason {
				if !strings.Contains(res.Reason, want) {
					t.Errorf("reason %q lacks %q", res.Reason, want)
				}
			}
		})
	}

	// Retries: the gauge is 0 at first; during the second pause it is
	// raised and the pause lasts until Prometheus has scraped the new
	// value, so the third attempt is the first that can pass.
	t.Run("passes after retries", func(t *testing.T) {
		gauge.Set(0)
		waitValue(t, server, "verify_test_ready_replicas", "0")
		r, clock := newTestRunner(t)
		sleeps := 0
		clock.onSleep = func() {
			sleeps++
			if sleeps == 2 {
				gauge.Set(3)
				waitValue(t, server, "verify_test_ready_replicas", "3")
			}
		}
		res := r.Check(context.Background(), config.Check{Prometheus: "verify_test_ready_replicas", Server: server, Op: ">=", Threshold: 2, Retries: 5},
			&config.Host{Name: "web-1"}, nil)
		if !res.OK || res.Attempts != 3 {
			t.Fatalf("got %+v, want success on attempt 3", res)
		}
	})
}

// waitValue waits until Prometheus reports want for query.
func waitValue(t *testing.T, server, query, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := promserver.Query(server, query)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed %q (%v), want %q", query, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestParseQueryResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want float64
		err  string
	}{
		{"vector", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1700000000.1,"2.5"]},{"metric":{},"value":[1,"9"]}]}}`, 2.5, ""},
		{"scalar", `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"-3"]}}`, -3, ""},
		{"+Inf", `{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}`, math.Inf(1), ""},
		{"empty vector", `{"status":"success","data":{"resultType":"vector","result":[]}}`, 0, "no sample"},
		{"matrix", `{"status":"success","data":{"resultType":"matrix","result":[]}}`, 0, "expected an instant vector or a scalar"},
		{"error", `{"status":"error","errorType":"bad_data","error":"1:5: parse error"}`, 0, "prometheus says bad_data: 1:5: parse error"},
		{"not json", `<html>502</html>`, 0, "parse response"},
		{"no status", `{}`, 0, "neither success nor error"},
		{"unknown type", `{"status":"success","data":{"resultType":"histogram","result":[]}}`, 0, "unknown result type"},
		{"short sample", `{"status":"success","data":{"resultType":"scalar","result":[1]}}`, 0, "got 1 elements"},
		{"number not string", `{"status":"success","data":{"resultType":"scalar","result":[1,2]}}`, 0, "parse sample value"},
		{"bad number", `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"many"]}]}}`, 0, "parse sample value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQueryResponse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := ParseQueryResponse([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`)); !errors.Is(err, ErrNoSample) {
		t.Errorf("empty vector: err %v is not ErrNoSample", err)
	}
}

func TestCompare(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		op   string
		v, t float64
		want bool
	}{
		{"<", 1, 2, true}, {"<", 2, 2, false},
		{"<=", 2, 2, true}, {"<=", 3, 2, false},
		{">", 3, 2, true}, {">", 2, 2, false},
		{">=", 2, 2, true}, {">=", 1, 2, false},
		{"==", 2, 2, true}, {"==", 1, 2, false},
		{"!=", 1, 2, true}, {"!=", 2, 2, false},
		{"!=", nan, 2, false}, {">", nan, 0, false},
	} {
		f, err := compareFunc(tc.op)
		if err != nil {
			t.Fatal(err)
		}
		if got := f(tc.v, tc.t); got != tc.want {
			t.Errorf("%v %s %v = %v, want %v", tc.v, tc.op, tc.t, got, tc.want)
		}
	}
}

// FuzzParseQueryResponse feeds arbitrary bytes where Prometheus's answer
// is expected: the parser must never panic, and a value it returns comes
// with no error.
func FuzzParseQueryResponse(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]}]}}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}`))
	f.Add([]byte(`{"status":"error","errorType":"timeout","error":"query timed out"}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"value":[]}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseQueryResponse(data)
		if err != nil && v != 0 {
			t.Fatalf("error %v came with value %v", err, v)
		}
	})
}
