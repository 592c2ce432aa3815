package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
)

// TestNarrow: only the environments listing the host remain, each with
// that host alone over the local transport, without its SSH settings or
// the fleet's batches; preview templates are left out.
func TestNarrow(t *testing.T) {
	host := func(name string) *config.Host {
		return &config.Host{Name: name, Address: "192.0.2.1", Port: 2222, User: "ops", Sudo: true, HostKey: "ssh-ed25519 AAAA"}
	}
	rev := &config.Revision{Environments: []*config.Environment{
		{Name: "web", Hosts: []*config.Host{host("web-1"), host("edge-1")}, Rollout: config.Rollout{Canary: 1, Batch: 5}},
		{Name: "db", Hosts: []*config.Host{host("db-1")}},
		{Name: "preview", Preview: true, Hosts: []*config.Host{host("edge-1")}},
	}}
	got := Narrow(rev, "edge-1", "/sandbox")
	if len(got.Environments) != 1 || got.Environments[0].Name != "web" {
		t.Fatalf("environments %+v, want web alone", got.Environments)
	}
	e := got.Environments[0]
	if len(e.Hosts) != 1 || e.Rollout != (config.Rollout{}) {
		t.Fatalf("web: hosts %+v, rollout %+v", e.Hosts, e.Rollout)
	}
	want := config.Host{Name: "edge-1", Transport: "local", Root: "/sandbox"}
	if h := *e.Hosts[0]; h.Name != want.Name || h.Transport != want.Transport || h.Root != want.Root ||
		h.Address != "" || h.Port != 0 || h.User != "" || h.Sudo || h.HostKey != "" {
		t.Errorf("edge-1 narrowed to %+v", h)
	}
}

// TestReportHidesURLCredentials: a central URL with credentials in it
// never reaches the report's error (which the agent logs) in clear.
func TestReportHidesURLCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("report-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(srv.URL, "http://", "http://ops:hunter2-pass@", 1)
	r := &Reporter{URL: u, Token: config.Secret{File: tokenFile}, Host: "web", States: func() []status.EnvStatus { return nil }}
	err := r.Report(context.Background())
	if err == nil {
		t.Fatal("a report answered 500 succeeded")
	}
	if strings.Contains(err.Error(), "hunter2-pass") {
		t.Errorf("the report's error quotes the URL's password: %v", err)
	}
}
