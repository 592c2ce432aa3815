package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryForArchitecture: a host of the daemon's architecture gets the
// daemon's binary, another one the binary of the configured folder, and a
// host for which no binary exists gets an error naming what is missing.
func TestBinaryForArchitecture(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "driftless")
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	for name, body := range map[string]string{"driftless": "own", "agents/driftless-linux-" + other: "other"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &Deployer{Own: own, Dir: filepath.Join(dir, "agents")}
	if p, sum, err := d.binary(runtime.GOARCH); err != nil || p != own || len(sum) != 64 {
		t.Fatalf("own architecture: %q %q %v", p, sum, err)
	}
	if p, _, err := d.binary(other); err != nil || p != filepath.Join(dir, "agents", "driftless-linux-"+other) {
		t.Fatalf("%s: %q %v", other, p, err)
	}
	if _, _, err := d.binary("riscv64"); err == nil || !strings.Contains(err.Error(), "no agent binary for linux/riscv64") {
		t.Fatalf("riscv64 without a binary: %v", err)
	}
	if _, _, err := (&Deployer{Own: own}).binary(other); err == nil || !strings.Contains(err.Error(), "agent.binaries") ||
		!strings.Contains(err.Error(), "driftless-linux-"+other) {
		t.Fatalf("%s without a folder: %v", other, err)
	}
}
