package main

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
)

// TestServeRefusesClusterUntilOwned: a cluster section is not ignored
// while replicas cannot own environments one at a time; serve refuses it
// before it opens any store.
func TestServeRefusesClusterUntilOwned(t *testing.T) {
	cfg := &config.Daemon{StateDir: t.TempDir(), Cluster: &config.Cluster{Endpoints: []string{"http://127.0.0.1:2379"}}}
	d, err := buildDaemon(cfg, zerolog.Nop(), "")
	if err == nil {
		d.close()
		t.Fatal("buildDaemon accepted a cluster section")
	}
	if !strings.Contains(err.Error(), "cluster mode") {
		t.Fatalf("error = %v, want one naming cluster mode", err)
	}
}
