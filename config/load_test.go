package config_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// writeRepo writes files (path relative to dir: content) into a new folder.
func writeRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSymlinkLeavingRepository checks that a source file which is a
// symlink to a file outside the repository is refused, and one to a file
// inside is read. The outside file is real and readable, so only the
// loader's check stops it.
func TestSymlinkLeavingRepository(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("do not leak"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := writeRepo(t, map[string]string{
		"files/inside.txt": "fine\n",
		"environments/e.yaml": `environment: e
hosts:
  - name: h
    resources:
      - file: /etc/out
        source: files/out.txt
      - file: /etc/in
        source: files/in.txt
      - service: s
        unit_source: files/dirlink
`,
	})
	for link, target := range map[string]string{"files/out.txt": outside, "files/in.txt": "inside.txt", "files/dirlink": filepath.Dir(outside)} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	want := `environments/e.yaml:6:17: source: "files/out.txt" is a symlink leading outside the repository
environments/e.yaml:10:22: unit_source: "files/dirlink" is a symlink leading outside the repository`
	if err == nil || err.Error() != want {
		t.Fatalf("got error:\n%v\nwant:\n%s", err, want)
	}
	if strings.Contains(err.Error(), "do not leak") {
		t.Fatal("the error shows the outside file's content")
	}
}

// TestChecksAndSpecsPerHost checks that each host gets its own rendered
// copy of the verify steps and of every spec: changing one host's spec
// must not change another's.
func TestChecksAndSpecsPerHost(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		"files/t.tmpl": "{{ .Host.Name }}",
		"environments/e.yaml": `environment: e
hosts:
  - {name: a, address: 10.0.0.1, roles: [r]}
  - {name: b, address: 10.0.0.2, roles: [r]}
roles:
  r:
    - file: /etc/name
      template: files/t.tmpl
verify:
  - tcp: "{{ .Host.Address }}:22"
`,
	})
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	hosts := rev.Environment("e").Hosts
	for i, want := range []struct{ name, tcp string }{{"a", "10.0.0.1:22"}, {"b", "10.0.0.2:22"}} {
		h := hosts[i]
		if got := h.Resources[0].Spec.(*targets.FileSpec).Content; got != want.name {
			t.Errorf("host %s: content %q, want %q", h.Name, got, want.name)
		}
		if len(h.Checks) != 1 || h.Checks[0].TCP != want.tcp || h.Checks[0].Host != want.name || h.Checks[0].Kind() != "tcp" {
			t.Errorf("host %s: checks %+v", h.Name, h.Checks)
		}
	}
	hosts[0].Resources[0].Spec.(*targets.FileSpec).Mode = "0600"
	if m := hosts[1].Resources[0].Spec.(*targets.FileSpec).Mode; m != "" {
		t.Errorf("changing host a's spec changed host b's mode to %q", m)
	}
}

// TestLoadRevisionMissingDir checks a folder that does not exist is a plain
// error naming it, not an empty revision.
func TestLoadRevisionMissingDir(t *testing.T) {
	_, err := config.LoadRevision(filepath.Join(t.TempDir(), "nope"), config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestSecretRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("DRIFTLESS_TEST_SECRET", "from-env")
	t.Setenv("DRIFTLESS_TEST_EMPTY", "")
	tests := []struct {
		name    string
		secret  config.Secret
		want    string
		wantErr string
	}{
		{"file trimmed", config.Secret{File: write("s", "hunter2\n\n")}, "hunter2", ""},
		{"file crlf", config.Secret{File: write("crlf", "tok\r\n")}, "tok", ""},
		{"env", config.Secret{Env: "DRIFTLESS_TEST_SECRET"}, "from-env", ""},
		{"empty file", config.Secret{File: write("empty", "\n")}, "", "the file is empty"},
		{"missing file", config.Secret{File: filepath.Join(dir, "absent")}, "", "no such file"},
		{"unset env", config.Secret{Env: "DRIFTLESS_TEST_UNSET_VARIABLE"}, "", "not set"},
		{"empty env", config.Secret{Env: "DRIFTLESS_TEST_EMPTY"}, "", "empty"},
		{"nothing", config.Secret{}, "", "no file or env"},
		{"both", config.Secret{File: "x", Env: "y"}, "", "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.secret.Read()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestSecretErrorsHideValue checks that a secret's value never shows in a
// daemon config error, even when it is written inline by mistake.
func TestSecretErrorsHideValue(t *testing.T) {
	_, err := config.ParseDaemon("d.yaml", []byte("api:\n  token: sup3r-s3cret-value\n"))
	if err == nil || strings.Contains(err.Error(), "sup3r") {
		t.Fatalf("got %v", err)
	}
	if want := "d.yaml:2:10: token: secrets are referenced by file or env, never inline"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// TestAgentEnabledRemoved: a configuration that still sets agent.enabled
// (the agent was optional once) is refused at the key, saying what to do;
// agent.binaries is still read.
func TestAgentEnabledRemoved(t *testing.T) {
	for _, v := range []string{"true", "false"} {
		_, err := config.ParseDaemon("d.yaml", []byte("agent:\n  binaries: /opt/agents\n  enabled: "+v+"\n"))
		want := "d.yaml:3:3: agent enabled: removed: driftless always reaches SSH hosts through its agent; delete this key"
		if err == nil || err.Error() != want {
			t.Fatalf("enabled: %s: got %v, want %q", v, err, want)
		}
	}
	cfg, err := config.ParseDaemon("d.yaml", []byte("agent:\n  binaries: /opt/agents\n"))
	if err != nil || cfg.Agent.Binaries != "/opt/agents" {
		t.Fatalf("binaries: %+v, %v", cfg, err)
	}
}

// TestDurationText checks durations read and print the way they are
// written in configuration files, in YAML and JSON alike.
func TestDurationText(t *testing.T) {
	var d config.Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.D() != 90*time.Minute {
		t.Fatalf("got %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Fatal("accepted an invalid duration")
	}
	out, err := json.Marshal(struct{ D config.Duration }{config.Duration(2 * time.Second)})
	if err != nil || string(out) != `{"D":"2s"}` {
		t.Fatalf("got %s, %v", out, err)
	}
	var back struct{ D config.Duration }
	if err := json.Unmarshal(out, &back); err != nil || back.D.D() != 2*time.Second {
		t.Fatalf("round trip gave %v, %v", back.D, err)
	}
}
