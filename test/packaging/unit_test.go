package packaging

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/test/need"
)

// unitPath is the unit file shipped in the repository.
var unitPath = filepath.Join(repoRoot, "systemd", "driftless.service")

// agentUnitPath is the pull agent's unit file shipped in the repository.
var agentUnitPath = filepath.Join(repoRoot, "systemd", "driftless-agent.service")

// unitKeys reads a systemd unit file into section -> key -> values, in
// order (a key may be given several times, as SystemCallFilter= is).
// Continuation lines are not used by the unit and not supported.
func unitKeys(t testing.TB, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open the unit file: %v", err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is neither a section nor key=value", path, n, line)
			}
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the unit file: %v", err)
	}
	return out
}

// TestUnitSettings checks the settings the daemon relies on: it tells
// systemd when it is ready and pings the watchdog (serve.go), is restarted
// when it fails, and runs unprivileged, writing only to its state folder.
func TestUnitSettings(t *testing.T) {
	svc := unitKeys(t, unitPath)["Service"]
	if svc == nil {
		t.Fatal("the unit has no [Service] section")
	}
	tests := []struct {
		key  string
		want func(v string) bool
		what string
	}{
		{"Type", eq("notify"), "notify: the daemon sends READY=1 once it serves"},
		{"WatchdogSec", positiveDuration, "a positive duration: the daemon pings the watchdog at half of it"},
		{"Restart", eq("on-failure"), "on-failure"},
		{"User", func(v string) bool { return v != "" && v != "root" && v != "0" }, "an unprivileged user"},
		{"ProtectSystem", eq("strict"), "strict"},
		{"ReadWritePaths", func(v string) bool { return slices.Contains(strings.Fields(v), config.DefaultStateDir) }, "the default state_dir " + config.DefaultStateDir},
		{"NoNewPrivileges", eq("yes"), "yes"},
		{"PrivateTmp", eq("yes"), "yes"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			vals := svc[tt.key]
			if len(vals) == 0 {
				t.Fatalf("%s= is not set, want %s", tt.key, tt.what)
			}
			// systemd uses the last assignment of a single-valued key.
			if v := vals[len(vals)-1]; !tt.want(v) {
				t.Errorf("%s=%s, want %s", tt.key, v, tt.what)
			}
		})
	}
	// StateDirectory= is what creates the state folder for the service
	// user; it must be the same folder ReadWritePaths opens.
	if got := svc["StateDirectory"]; len(got) == 0 || "/var/lib/"+got[len(got)-1] != config.DefaultStateDir {
		t.Errorf("StateDirectory=%v does not create %s", got, config.DefaultStateDir)
	}
	execStart := svc["ExecStart"]
	if len(execStart) != 1 || !strings.Contains(execStart[0], " serve ") {
		t.Errorf("ExecStart=%v, want one command running `driftless serve`", execStart)
	}
}

// TestAgentUnitSettings checks the settings the pull agent relies on: it
// tells systemd when it is ready and pings the watchdog (the daemon's
// code), is restarted when it fails, runs as root with nothing hidden from
// it (it manages the whole host: files anywhere, /tmp, /home, users), and
// keeps its state in the folder pull mode's state_dir defaults to.
// TestPullMode (test/e2e) runs it under a test host's own systemd.
func TestAgentUnitSettings(t *testing.T) {
	svc := unitKeys(t, agentUnitPath)["Service"]
	if svc == nil {
		t.Fatal("the agent unit has no [Service] section")
	}
	for key, want := range map[string]func(string) bool{
		"Type":        eq("notify"),
		"WatchdogSec": positiveDuration,
		"Restart":     eq("on-failure"),
		"User":        eq("root"),
		"ExecStart": func(v string) bool {
			return strings.HasSuffix(strings.Fields(v)[0], "/driftless") && strings.Contains(v, " agent --pull --config /etc/driftless/agent.yaml")
		},
		"StateDirectory": func(v string) bool { return "/var/lib/"+v == config.DefaultAgentStateDir },
	} {
		vals := svc[key]
		if len(vals) == 0 || !want(vals[len(vals)-1]) {
			t.Errorf("the agent unit has %s=%v", key, vals)
		}
	}
	for _, key := range []string{"ProtectSystem", "ProtectHome", "PrivateTmp", "ReadOnlyPaths", "InaccessiblePaths", "CapabilityBoundingSet", "DynamicUser"} {
		if vals := svc[key]; len(vals) > 0 {
			t.Errorf("the agent unit sets %s=%v: it would hide part of the host the agent manages", key, vals)
		}
	}
}

func eq(want string) func(string) bool { return func(v string) bool { return v == want } }

func positiveDuration(v string) bool {
	// systemd takes a bare number as seconds.
	if !strings.ContainsAny(v, "smhd") {
		v += "s"
	}
	d, err := time.ParseDuration(v)
	return err == nil && d > 0
}

// testUnitVerifies runs `systemd-analyze verify` on a copy of each unit
// whose ExecStart runs a freshly built binary: systemd checks every
// directive and that the command is executable. Any output, even a
// warning about an unknown key, fails the test.
func testUnitVerifies(t *testing.T, bin string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		need.Missing(t, "systemd-analyze is not installed (package systemd): the unit is not verified")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "driftless.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\nsources:\n  - name: local\n    local: {path: "+dir+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ path, command string }{
		{unitPath, " serve --config "},
		{agentUnitPath, " agent --pull --config "},
	} {
		orig, err := os.ReadFile(u.path)
		if err != nil {
			t.Fatal(err)
		}
		var unit bytes.Buffer
		replaced := 0
		for _, line := range strings.SplitAfter(string(orig), "\n") {
			if strings.HasPrefix(line, "ExecStart=") {
				line = "ExecStart=" + bin + u.command + cfg + "\n"
				replaced++
			}
			unit.WriteString(line)
		}
		if replaced != 1 {
			t.Fatalf("%s has %d ExecStart= lines, want 1", u.path, replaced)
		}
		path := filepath.Join(dir, filepath.Base(u.path))
		if err := os.WriteFile(path, unit.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
		cancel()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u.path), err, out)
		}
	}
}
