package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/test/gitserver"
	"github.com/driftless/driftless/test/hosts"
	"github.com/driftless/driftless/test/need"
	"github.com/driftless/driftless/test/secretstest"
)

// secretFiles are a revision's files with its secrets encrypted by the
// real sops and age commands: a SOPS variables file written into a
// template and into an env file's value, a SOPS binary file and an age
// file as whole contents, a SOPS-encrypted unit file of a running service
// (reading an env file marked secret).
func secretFiles(t testing.TB, h *hosts.Host, recipient, v, extra string) map[string]string {
	env := fmt.Sprintf(`environment: prod
hosts:
  - name: %s
    address: %s
    vars_files: [secrets/app.yaml]
    resources:
      - directory: /etc/app
      - file: /etc/app/app.conf
        template: files/app.conf.tmpl
        mode: "0600"
      - file: /etc/app/tls.key
        source: files/tls.key
        mode: "0600"
      - file: /etc/app/token
        source: files/token.age
        mode: "0600"
      - file: /etc/app/public.conf
        content: "public-%s\n"
      - env: /etc/app/app.env
        mode: "0644"
        vars: {DB_PASSWORD: "{{ .Vars.db_password }}"}
      - env: /etc/app/api.env
        mode: "0644"
        secret: true
        vars: {API_KEY: E2E-ENV-KEY-%s}
      - service: secret-app
        unit_source: files/secret-app.service
        state: running
        requires: ["env:/etc/app/api.env"]
%s`, h.Name, h.Address, v, v, extra)
	return map[string]string{
		"environments/prod.yaml":   env,
		"secrets/app.yaml":         string(secretstest.SOPS(t, "app.yaml", []byte("db_password: E2E-db-pw-"+v+"\n"), recipient)),
		"files/app.conf.tmpl":      "user=app\npassword={{ .Vars.db_password }}\n",
		"files/tls.key":            string(secretstest.SOPS(t, "tls.key", []byte("E2E-TLS-KEY-"+v+"\n"), recipient)),
		"files/token.age":          string(secretstest.Age(t, []byte("E2E-AGE-TOKEN-"+v+"\n"), true, recipient)),
		"files/secret-app.service": string(secretstest.SOPS(t, "secret-app.service", []byte(secretUnit(v)), recipient)),
	}
}

// secretUnit is the unit file of version v: its secret is in the unit
// itself, to show that it never leaves the daemon either.
func secretUnit(v string) string {
	return "[Service]\nEnvironment=UNIT_KEY=E2E-UNIT-KEY-" + v + "\nEnvironmentFile=/etc/app/api.env\nExecStart=/bin/sleep infinity\n"
}

// TestSecretsOnRealHostNeverLeave is issue 14's acceptance: the built
// daemon decrypts files that the sops and age commands encrypted and
// applies them on an SSH test host; a second version fails its
// verification and is rolled back; a hand edit of a secret file is
// corrected; a pull request changing the secrets is previewed with a plan
// comment to the Git host; notices go to a webhook. Then every output (the
// daemon's debug log, the API, the status page, the metrics, the Git
// host's received bodies, the notification bodies, and the store's file)
// is searched for each secret value and its base64 forms: none may hold
// one.
func TestSecretsOnRealHostNeverLeave(t *testing.T) {
	if testing.Short() {
		need.Optional(t, "end-to-end test: builds the daemon and starts a test host; skipped in -short")
	}
	lab := hosts.NewLab(t, hosts.Options{})
	// A systemd host, so that the decrypted unit is loaded and started.
	h := lab.Kind2("web-1")
	key := secretstest.NewKey(t, t.TempDir(), "age.key")

	git := gitserver.New(t)
	repoURL := git.CreateRepo("infra")
	work := git.Clone(t, "infra")
	// A check whose name a template writes a decrypted value into: its
	// metric label and results hide it.
	v1 := work.Commit(t, secretFiles(t, h, key.Recipient, "v1", "verify:\n  - name: \"db {{ .Vars.db_password }}\"\n    command: \"true\"\n"), "secrets v1")
	work.Push(t)

	gh := newFakeGitHub(t)
	var mu sync.Mutex
	var notices []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		notices = append(notices, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	secret := []byte("e2e-webhook-secret")
	hookSecret := writeFile(t, dir, "github.secret", string(secret)+"\n", 0o600)
	ghToken := writeFile(t, dir, "github.token", "ghs-test-token\n", 0o600)
	apiToken := writeFile(t, dir, "api.token", "api-test-token\n", 0o600)
	extra := fmt.Sprintf(`secrets:
  age_key_files: [%s]
webhooks:
  github: {file: %s}
api:
  token: {file: %s}
feedback:
  github:
    base_url: %s
    token: {file: %s}
    repository: team/infra
notify:
  webhooks:
    - url: %s
`, key.File, hookSecret, apiToken, gh.srv.URL, ghToken, hook.URL)
	cfgPath := pollingConfig(t, lab, repoURL, 2*time.Second, extra)
	bin, _ := buildBinaries(t, false)
	d := startDaemon(t, bin, cfgPath)
	waitApplied(t, d, "prod", v1)
	hostFile := func(p string) string {
		b, err := os.ReadFile(filepath.Join(h.Root, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	files := func(v string) map[string]string {
		return map[string]string{"/etc/app/app.conf": "user=app\npassword=E2E-db-pw-" + v + "\n", "/etc/app/tls.key": "E2E-TLS-KEY-" + v + "\n", "/etc/app/token": "E2E-AGE-TOKEN-" + v + "\n",
			"/etc/app/app.env": "DB_PASSWORD=E2E-db-pw-" + v + "\n", "/etc/app/api.env": "API_KEY=E2E-ENV-KEY-" + v + "\n",
			"/etc/systemd/system/secret-app.service": secretUnit(v)}
	}
	for p, want := range files("v1") {
		if got := hostFile(p); got != want {
			t.Fatalf("%s on the host = %q, want %q", p, got, want)
		}
	}
	// systemd runs the decrypted unit with the secret env file.
	out, err := h.Exec("systemctl show -p ActiveState --value secret-app; tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value secret-app)/environ | grep -E '^(UNIT_KEY|API_KEY)=' | sort")
	if err != nil || out != "active\nAPI_KEY=E2E-ENV-KEY-v1\nUNIT_KEY=E2E-UNIT-KEY-v1\n" {
		t.Fatalf("secret-app on the host: %q, %v", out, err)
	}

	// An unnamed check is named by its command, which here quotes a
	// decrypted value: progress events, logs and reports carry it hidden.
	// The store file is read while v2's journal is open (its check takes
	// 2 s), before the rollback frees (but does not zero) its pages.
	storePath := filepath.Join(filepath.Dir(cfgPath), "state", "state.db")
	var during [][]byte
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for len(during) < 5 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if b, err := os.ReadFile(storePath); err == nil && bytes.Contains(b, []byte("public-v2")) {
				during = append(during, b)
			}
		}
	}()
	v2 := work.Commit(t, secretFiles(t, h, key.Recipient, "v2", "verify:\n  - command: \"sleep 2; exit 1; echo {{ .Vars.db_password }}\"\n"), "secrets v2, failing its verification")
	work.Push(t)
	waitFor(t, 2*time.Minute, 200*time.Millisecond, "v2 rolled back", func() error {
		if runsOf(t, d, "prod", v2) == 0 {
			return fmt.Errorf("no run of v2 yet")
		}
		return nil
	})
	close(stop)
	<-stopped
	if len(during) == 0 {
		t.Fatal("the store file was never read while v2's journal was open")
	}
	requireRun(t, d, "prod", v2, "rolled_back")
	for p, want := range files("v1") {
		if got := hostFile(p); got != want {
			t.Fatalf("%s after the rollback = %q, want v1 restored", p, got)
		}
	}

	writeFile(t, filepath.Join(h.Root, "etc", "app"), "tls.key", "hand edit\n", 0o600)
	waitFor(t, time.Minute, 200*time.Millisecond, "the hand edit of tls.key corrected", func() error {
		if got := hostFile("/etc/app/tls.key"); got != "E2E-TLS-KEY-v1\n" {
			return fmt.Errorf("tls.key = %q", got)
		}
		return nil
	})

	work.Checkout(t, "feature")
	// The pull request rotates the secrets and adds a template that would
	// write the password's first byte ('E', 69) as a file's size, which a
	// preview that decrypted would publish. A preview decrypts nothing.
	prFiles := secretFiles(t, h, key.Recipient, "v3", "      - file: /etc/app/probe\n        template: files/probe.tmpl\n")
	prFiles["files/probe.tmpl"] = `{{ printf "%*d" (index .Vars.db_password 0) 0 }}`
	head := work.Commit(t, prFiles, "rotate the secrets")
	work.Push(t)
	work.PushRef(t, "refs/pull/5/head")
	comment := previewPullRequest(t, d, gh, secret, repoURL, head, "alice")
	if !strings.Contains(comment, "not evaluated (encrypted; a preview never decrypts)") || strings.Contains(comment, "69 bytes") {
		t.Errorf("the plan comment does not say that the encrypted secrets were not evaluated, or shows the probe's size:\n%s", comment)
	}
	waitFor(t, time.Minute, 200*time.Millisecond, "notices", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(notices) == 0 {
			return fmt.Errorf("no notice received")
		}
		return nil
	})

	outputs := map[string][]byte{"daemon log": []byte(d.Log())}
	for _, p := range []string{"/api/v1/environments", "/api/v1/environments/prod", "/api/v1/environments/prod/history", "/api/v1/environments/prod/progress", "/", "/environments/prod", "/environments/prod/diffs", "/metrics"} {
		req, _ := http.NewRequest("GET", d.URL+p, nil)
		req.Header.Set("Authorization", "Bearer api-test-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		outputs["GET "+p] = body
	}
	if !strings.Contains(string(outputs["GET /environments/prod/diffs"]), "secret changed") {
		t.Errorf("the diffs page does not say that a secret changed")
	}
	if !strings.Contains(string(outputs["GET /metrics"]), `check="db ***"`) {
		t.Errorf("the metrics do not count the named check, hidden")
	}
	if !strings.Contains(string(outputs["GET /api/v1/environments/prod/progress"]), `"command:sleep 2; exit 1; echo ***"`) {
		t.Errorf("the progress events do not show the failing check, hidden:\n%s", outputs["GET /api/v1/environments/prod/progress"])
	}
	outputs["git host"] = []byte(strings.Join(gh.received(), "\n"))
	mu.Lock()
	outputs["notifications"] = []byte(strings.Join(notices, "\n"))
	mu.Unlock()
	if outputs["store"], err = os.ReadFile(storePath); err != nil {
		t.Fatal(err)
	}
	outputs["store during the rollout"] = bytes.Join(during, nil)
	var values []string
	for _, p := range []string{"E2E-db-pw-", "E2E-TLS-KEY-", "E2E-AGE-TOKEN-", "E2E-ENV-KEY-", "E2E-UNIT-KEY-"} {
		for _, v := range []string{"v1", "v2", "v3"} {
			values = append(values, p+v)
		}
	}
	for _, hit := range secretstest.Leaks(outputs, values) {
		t.Error(hit)
	}
}
