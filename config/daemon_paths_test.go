package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadDaemonResolvesRelativePaths loads a driftless.yaml full of
// relative paths from another working directory: every file path ends up
// under the file's own folder, absolute ones and remote URLs are kept.
func TestLoadDaemonResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	yaml := `state_dir: state
sources:
  - name: here
    local: {path: ./declared}
  - name: repo
    git:
      url: repos/infra.git
      ssh_key: {file: keys/git}
      known_hosts: /etc/driftless/git_known_hosts
      signing_keys: keys/signers.asc
  - name: remote
    git: {url: "git@git.example:ops/infra.git", token: {env: GIT_TOKEN}}
  - name: https
    git: {url: "https://git.example/ops/infra.git", password: {file: secrets/pw}, username: u}
webhooks:
  github: {file: secrets/github}
api:
  token: {file: /etc/driftless/api.token}
ssh:
  key_file: id_ed25519
  known_hosts: known_hosts
notify:
  slack: [{url_secret: {file: secrets/slack}}]
  email: {server: "127.0.0.1:25", from: a@b.example, to: [c@d.example], password: {file: secrets/smtp}}
cluster:
  endpoints: ["https://etcd-1.example:2379"]
  tls: {ca_file: etcd/ca.pem, cert_file: etcd/client.pem, key_file: /etc/driftless/etcd.key}
`
	if err := os.WriteFile(filepath.Join(dir, "driftless.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	cfg, err := LoadDaemon(filepath.Join(dir, "driftless.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := func(p string) string { return filepath.Join(dir, p) }
	for _, c := range []struct{ name, got, want string }{
		{"state_dir", cfg.StateDir, in("state")},
		{"local path", cfg.Sources[0].Local.Path, in("declared")},
		{"local git url", cfg.Sources[1].Git.URL, in("repos/infra.git")},
		{"git ssh_key", cfg.Sources[1].Git.SSHKey.File, in("keys/git")},
		{"absolute known_hosts", cfg.Sources[1].Git.KnownHosts, "/etc/driftless/git_known_hosts"},
		{"signing_keys", cfg.Sources[1].Git.SigningKeys, in("keys/signers.asc")},
		{"scp-like url", cfg.Sources[2].Git.URL, "git@git.example:ops/infra.git"},
		{"env secret", cfg.Sources[2].Git.Token.Env, "GIT_TOKEN"},
		{"https url", cfg.Sources[3].Git.URL, "https://git.example/ops/infra.git"},
		{"git password", cfg.Sources[3].Git.Password.File, in("secrets/pw")},
		{"webhook secret", cfg.Webhooks.GitHub.File, in("secrets/github")},
		{"absolute api token", cfg.API.Token.File, "/etc/driftless/api.token"},
		{"ssh key_file", cfg.SSH.KeyFile, in("id_ed25519")},
		{"ssh known_hosts", cfg.SSH.KnownHosts, in("known_hosts")},
		{"slack url secret", cfg.Notify.Slack[0].URLRef.File, in("secrets/slack")},
		{"smtp password", cfg.Notify.Email.Password.File, in("secrets/smtp")},
		{"etcd ca_file", cfg.Cluster.TLS.CAFile, in("etcd/ca.pem")},
		{"etcd cert_file", cfg.Cluster.TLS.CertFile, in("etcd/client.pem")},
		{"absolute etcd key_file", cfg.Cluster.TLS.KeyFile, "/etc/driftless/etcd.key"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestIsLocalPath tells Git URLs that are paths on this machine apart.
func TestIsLocalPath(t *testing.T) {
	for url, want := range map[string]bool{
		"repos/infra.git":          true,
		"./infra":                  true,
		"/srv/git/infra.git":       true,
		"../x:y/infra":             true,
		"git@host:ops/infra.git":   false,
		"host:infra.git":           false,
		"https://host/infra.git":   false,
		"file:///srv/infra.git":    false,
		"ssh://git@host/infra.git": false,
		"":                         false,
	} {
		if got := isLocalPath(url); got != want {
			t.Errorf("isLocalPath(%q) = %v, want %v", url, got, want)
		}
	}
}

// TestLoadAgentStateDir: the pull agent's state_dir defaults to the
// agent unit's StateDirectory, the daemon's to its own; a state_dir the
// file gives is kept by both.
func TestLoadAgentStateDir(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		yaml        string
		load        func(string) (*Daemon, error)
		want, which string
	}{
		{"pull: {host: edge-1}\n", LoadAgent, DefaultAgentStateDir, "agent, default"},
		{"pull: {host: edge-1}\n", LoadDaemon, DefaultStateDir, "daemon, default"},
		{"state_dir: /srv/state\n", LoadAgent, "/srv/state", "agent, given"},
		{"state_dir: /srv/state\n", LoadDaemon, "/srv/state", "daemon, given"},
	} {
		path := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := c.load(path)
		if err != nil {
			t.Fatalf("%s: %v", c.which, err)
		}
		if cfg.StateDir != c.want {
			t.Errorf("%s: state_dir %q, want %q", c.which, cfg.StateDir, c.want)
		}
	}
}
