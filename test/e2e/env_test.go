package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/test/hosts"
)

// appEnv is the declared environment "prod": the app artifact with its
// systemd unit (restarted by the artifact's notify), two managed files, one
// of them only watched (drift: warn), and an HTTP health check per host.
func appEnv(hs []*hosts.Host, url, sum string) string {
	var b strings.Builder
	b.WriteString("environment: prod\ndrift: enforce\nhosts:\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    roles: [app]\n", h.Name, h.Address)
	}
	fmt.Fprintf(&b, `roles:
  app:
    - artifact: /opt/app
      url: %s
      sha256: %s
      format: tar.gz
      notify: [service:app]
    - service: app
      state: running
      enabled: true
      requires: [artifact:/opt/app]
      unit: |
        [Unit]
        Description=driftless end-to-end app
        [Service]
        ExecStart=/opt/app/current/app -listen :8080
        [Install]
        WantedBy=multi-user.target
    - directory: /etc/app
      mode: "0755"
    - file: /etc/app/enforced.conf
      content: "managed by driftless\n"
      mode: "0644"
      requires: [directory:/etc/app]
    - file: /etc/app/watched.conf
      content: "watched by driftless\n"
      mode: "0644"
      drift: warn
      requires: [directory:/etc/app]
rollout: {batch: 3, max_failed: 0}
verify:
  - name: healthz
    http: "http://{{ .Host.Address }}:8080/healthz"
    expect_status: 200
    timeout: 2s
    retries: 10
    interval: 300ms
`, url, sum)
	return b.String()
}

// baseEnv declares the hosts of "prod" with one folder each: the state the
// daemon starts from.
func baseEnv(hs []*hosts.Host) string {
	var b strings.Builder
	b.WriteString("environment: prod\ndrift: enforce\nhosts:\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    resources:\n      - directory: /etc/app\n        mode: \"0755\"\n", h.Name, h.Address)
	}
	return b.String()
}

// daemonConfig writes driftless.yaml for one Git source followed through
// GitHub webhooks (its poll interval is an hour, so only a webhook makes it
// fetch early) and SSH hosts of lab, and returns its path.
func daemonConfig(t testing.TB, lab *hosts.Lab, repoURL string, secret []byte, drift time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "github.secret", string(secret)+"\n", 0o600)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
drift_interval: %s
sources:
  - name: infra
    git:
      url: %s
      branch: main
      interval: 1h
webhooks:
  github: {file: %s}
ssh:
  user: root
  key_file: %s
  known_hosts: %s
  timeout: 30s
  parallelism: 20
`, filepath.Join(dir, "state"), drift, repoURL, secretFile, lab.ClientKeyFile, lab.KnownHostsFile)
	return writeFile(t, dir, "driftless.yaml", cfg, 0o644)
}
