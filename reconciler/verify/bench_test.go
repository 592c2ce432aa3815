package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
)

// BenchmarkParseQueryResponse parses a 100-series vector answer, the
// size of a query without aggregation over a fleet.
func BenchmarkParseQueryResponse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"metric":{"__name__":"up","instance":"10.0.0.%d:9100","job":"node"},"value":[1700000000.123,"1"]}`, i)
	}
	sb.WriteString(`]}}`)
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if v, err := ParseQueryResponse(data); err != nil || v != 1 {
			b.Fatalf("got %v, %v", v, err)
		}
	}
}

// BenchmarkHTTPCheck runs a passing http check with a body regexp
// against a loopback server, connection reused: the check's own cost.
func BenchmarkHTTPCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	r := New(Options{HTTPClient: client, Logger: zerolog.Nop()})
	c := config.Check{HTTP: srv.URL + "/healthz", ExpectBody: `"status":"ok"`}
	h := &config.Host{Name: "web-1"}
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Check(context.Background(), c, h, nil); !res.OK {
			b.Fatal(res.Reason)
		}
	}
}
