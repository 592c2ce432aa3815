package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/secretstest"
)

// TestLoadDecryptsSecrets loads a repository whose variables and files were
// encrypted by the sops and age commands: the host gets the clear values,
// every decrypted file and every template that writes a decrypted value is
// marked secret, and the decrypted values are the host's SecretValues.
func TestLoadDecryptsSecrets(t *testing.T) {
	keys := t.TempDir()
	key := secretstest.NewKey(t, keys, "key.txt")
	other := secretstest.NewKey(t, keys, "other.txt")
	repo := map[string]string{
		"secrets/web.yaml":    string(secretstest.SOPS(t, "web.yaml", []byte("db_password: Pa55-word-xyz\nport: 5432\n"), key.Recipient)),
		"files/tls.key":       string(secretstest.SOPS(t, "tls.key", []byte("KEY-MATERIAL-abc\n"), key.Recipient)),
		"files/token.age":     string(secretstest.Age(t, []byte("age-token-777\n"), true, key.Recipient)),
		"files/app.conf.tmpl": "password={{ .Vars.db_password }}\n",
		"files/plain.tmpl":    "port={{ .Vars.port }}\n",
		"environments/e.yaml": `environment: e
hosts:
  - name: h
    vars_files: [secrets/web.yaml]
    vars: {port: 6000}
    resources:
      - file: /etc/tls.key
        source: files/tls.key
      - file: /etc/token
        source: files/token.age
      - file: /etc/app.conf
        template: files/app.conf.tmpl
      - file: /etc/plain
        template: files/plain.tmpl
`,
	}
	dir := writeRepo(t, repo)
	ids, err := secrets.LoadIdentities([]string{key.File})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	h := rev.Environments[0].Hosts[0]
	if h.Vars["db_password"] != "Pa55-word-xyz" || h.Vars["port"] != 6000 {
		t.Fatalf("vars = %v: want the decrypted password and the host's own port", h.Vars)
	}
	want := map[string]struct {
		content string
		secret  bool
	}{
		"/etc/tls.key":  {"KEY-MATERIAL-abc\n", true},
		"/etc/token":    {"age-token-777\n", true},
		"/etc/app.conf": {"password=Pa55-word-xyz\n", true},
		"/etc/plain":    {"port=6000\n", false},
	}
	for _, r := range h.Resources {
		s := r.Spec.(*targets.FileSpec)
		if w := want[r.Name]; s.Content != w.content || s.Secret != w.secret {
			t.Errorf("%s: content %q secret %v, want %q %v", r.Name, s.Content, s.Secret, w.content, w.secret)
		}
	}
	if got := strings.Join(rev.SecretValues(), ","); got != "5432,Pa55-word-xyz" {
		t.Errorf("SecretValues = %s", got)
	}

	t.Run("unmerged revision: every template of the host is secret", func(t *testing.T) {
		rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids, Untrusted: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rev.Environments[0].Hosts[0].Resources {
			if s := r.Spec.(*targets.FileSpec); !s.Secret {
				t.Errorf("%s is not secret in an unmerged revision", r.Name)
			}
		}
	})

	t.Run("no identity: an error at each use, naming the fix", func(t *testing.T) {
		_, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
		var list config.ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("err = %v, want an ErrorList", err)
		}
		got := err.Error()
		for _, w := range []string{
			`environments/e.yaml:4:17: vars_files: "secrets/web.yaml" is SOPS-encrypted and cannot be decrypted: the daemon has no age identity`,
			`environments/e.yaml:8:17: source: "files/tls.key" is SOPS-encrypted and cannot be decrypted`,
			`environments/e.yaml:10:17: source: "files/token.age" is age-encrypted and cannot be decrypted`,
			"secrets.age_key_files",
		} {
			if !strings.Contains(got, w) {
				t.Errorf("missing %q in:\n%s", w, got)
			}
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		wrong, _ := secrets.LoadIdentities([]string{other.File})
		_, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: wrong})
		if err == nil || !strings.Contains(err.Error(), `environments/e.yaml:8:17: source: "files/tls.key" is SOPS-encrypted and cannot be decrypted: none of the configured age identities can decrypt it`) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "Pa55") || strings.Contains(err.Error(), "KEY-MATERIAL") {
			t.Fatalf("the error quotes a secret: %v", err)
		}
	})
	t.Run("skip decryption: where it was not checked", func(t *testing.T) {
		rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), SkipDecrypt: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range rev.Undecrypted {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != "environments/e.yaml:8:17 environments/e.yaml:10:17 environments/e.yaml:4:17" {
			t.Fatalf("Undecrypted = %v", got)
		}
	})
}

// TestLoadSecretEnvAndUnit: an env value rendered with a decrypted
// variable makes the env secret, and so does `secret: true`, whose values
// join the host's SecretValues (so a template writing one is secret too);
// a unit_source encrypted by sops or age is decrypted into a secret unit.
// Without the identity, or with the wrong one, the unit_source fails at
// its line; a SOPS-encrypted declaration is refused.
func TestLoadSecretEnvAndUnit(t *testing.T) {
	keys := t.TempDir()
	key := secretstest.NewKey(t, keys, "key.txt")
	other := secretstest.NewKey(t, keys, "other.txt")
	unit := "[Service]\nEnvironment=API_KEY=UNIT-KEY-456\nExecStart=/bin/true\n"
	repo := map[string]string{
		"secrets/web.yaml":     string(secretstest.SOPS(t, "web.yaml", []byte("db_password: Env-Pa55-xyz\n"), key.Recipient)),
		"files/app.service":    string(secretstest.SOPS(t, "app.service", []byte(unit), key.Recipient)),
		"files/worker.service": string(secretstest.Age(t, []byte(unit), false, key.Recipient)),
		"files/plain.service":  "[Service]\nExecStart=/bin/true\n",
		"files/uses-api.tmpl":  "key={{ .Vars.api }}\n",
		"environments/e.yaml": `environment: e
hosts:
  - name: h
    vars_files: [secrets/web.yaml]
    vars: {port: "6000", api: inline-api-key-123}
    resources:
      - file: /etc/uses-api
        template: files/uses-api.tmpl
      - env: /etc/app.env
        vars: {DB_PASSWORD: "{{ .Vars.db_password }}", PORT: "{{ .Vars.port }}"}
      - env: /etc/plain.env
        vars: {PORT: "{{ .Vars.port }}", NAME: web}
      - env: /etc/api.env
        secret: true
        vars: {API_KEY: inline-api-key-123}
      - service: app
        unit_source: files/app.service
      - service: worker
        unit_source: files/worker.service
      - service: plain
        unit_source: files/plain.service
`,
	}
	dir := writeRepo(t, repo)
	ids, err := secrets.LoadIdentities([]string{key.File})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	h := rev.Environments[0].Hosts[0]
	want := map[string]bool{
		"file:/etc/uses-api": true, "env:/etc/app.env": true, "env:/etc/plain.env": false, "env:/etc/api.env": true,
		"service:app": true, "service:worker": true, "service:plain": false,
	}
	for _, r := range h.Resources {
		if r.IsSecret() != want[r.ID()] {
			t.Errorf("%s: secret %v, want %v", r.ID(), r.IsSecret(), want[r.ID()])
		}
		switch s := r.Spec.(type) {
		case *targets.EnvSpec:
			if r.Name == "/etc/app.env" && (s.Vars["DB_PASSWORD"] != "Env-Pa55-xyz" || s.Vars["PORT"] != "6000") {
				t.Errorf("app.env vars = %v, want the rendered values", s.Vars)
			}
		case *targets.ServiceSpec:
			if r.Name != "plain" && s.Unit != unit {
				t.Errorf("%s: unit %q, want the decrypted unit", r.Name, s.Unit)
			}
		}
	}
	if got := strings.Join(h.SecretValues, ","); got != "Env-Pa55-xyz,inline-api-key-123" {
		t.Errorf("SecretValues = %s", got)
	}

	t.Run("no identity or the wrong one: an error at the unit_source", func(t *testing.T) {
		wrong, _ := secrets.LoadIdentities([]string{other.File})
		for _, ids := range []*secrets.Identities{nil, wrong} {
			_, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
			for _, w := range []string{
				`environments/e.yaml:17:22: unit_source: "files/app.service" is SOPS-encrypted and cannot be decrypted`,
				`environments/e.yaml:19:22: unit_source: "files/worker.service" is age-encrypted and cannot be decrypted`,
			} {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("identities %d: err = %v, want %q", ids.Len(), err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "UNIT-KEY") {
				t.Errorf("the error quotes the unit: %v", err)
			}
		}
	})
	t.Run("skip decryption: the unit_source is not checked", func(t *testing.T) {
		rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), SkipDecrypt: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range rev.Undecrypted {
			got = append(got, p.String())
		}
		if s := strings.Join(got, " "); !strings.Contains(s, "environments/e.yaml:17:22") || !strings.Contains(s, "environments/e.yaml:19:22") {
			t.Fatalf("Undecrypted = %v", got)
		}
		// What comes from an encrypted file, and every template of a host
		// whose variables are encrypted, is unknown: secret, never applied.
		want := map[string]bool{
			"file:/etc/uses-api": true, "env:/etc/app.env": true, "env:/etc/plain.env": true, "env:/etc/api.env": false,
			"service:app": true, "service:worker": true, "service:plain": false,
		}
		for _, r := range rev.Environments[0].Hosts[0].Resources {
			if r.Undecrypted != want[r.ID()] || (r.Undecrypted && !r.IsSecret()) {
				t.Errorf("%s: undecrypted %v secret %v, want undecrypted %v", r.ID(), r.Undecrypted, r.IsSecret(), want[r.ID()])
			}
		}
	})
	t.Run("a rendered value with a newline is refused without quoting it", func(t *testing.T) {
		bad := writeRepo(t, map[string]string{
			"secrets/web.yaml":    string(secretstest.SOPS(t, "web.yaml", []byte("multi: \"Line-One-pw\\nline2\"\n"), key.Recipient)),
			"environments/e.yaml": "environment: e\nhosts:\n  - name: h\n    vars_files: [secrets/web.yaml]\n    resources:\n      - env: /etc/x.env\n        vars: {X: \"{{ .Vars.multi }}\"}\n",
		})
		_, err := config.LoadRevision(bad, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
		if err == nil || !strings.Contains(err.Error(), "the value of X, rendered, holds a newline") || strings.Contains(err.Error(), "Line-One") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("errors of templates and checks hide decrypted values; without decryption checks are not rendered", func(t *testing.T) {
		bad := writeRepo(t, map[string]string{
			"secrets/web.yaml":    string(secretstest.SOPS(t, "web.yaml", []byte("pw: Quoted-By-Errors-1\n"), key.Recipient)),
			"files/range.tmpl":    "{{ range .Vars.pw }}{{ end }}",
			"environments/e.yaml": "environment: e\nhosts:\n  - name: h\n    vars_files: [secrets/web.yaml]\n    resources:\n      - file: /etc/x\n        template: files/range.tmpl\n      - env: /etc/x.env\n        vars: {X: \"{{ range .Vars.pw }}{{ end }}\"}\nverify:\n  - tcp: \"{{ .Vars.pw }}\"\n",
		})
		_, err := config.LoadRevision(bad, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
		if err == nil || strings.Count(err.Error(), "***") != 3 || strings.Contains(err.Error(), "Quoted-By") {
			t.Fatalf("err = %v, want three errors, each hiding the value", err)
		}
		if _, err := config.LoadRevision(bad, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), SkipDecrypt: true}); err != nil {
			t.Fatalf("without decryption: %v", err)
		}
		// Unmerged (a preview environment's head, which is decrypted): no
		// message at all, whatever the template does to the value.
		hexed := writeRepo(t, map[string]string{
			"secrets/web.yaml":    string(secretstest.SOPS(t, "web.yaml", []byte("pw: Quoted-By-Errors-1\n"), key.Recipient)),
			"files/range.tmpl":    `{{ range (printf "%x" .Vars.pw) }}{{ end }}`,
			"environments/e.yaml": "environment: e\nhosts:\n  - name: h\n    vars_files: [secrets/web.yaml]\n    resources:\n      - file: /etc/x\n        template: files/range.tmpl\n",
		})
		_, err = config.LoadRevision(hexed, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids, Untrusted: true})
		if err == nil || !strings.Contains(err.Error(), "the message is hidden") || strings.Contains(err.Error(), fmt.Sprintf("%x", "Quoted-By")) {
			t.Fatalf("unmerged: err = %v", err)
		}
	})
	t.Run("an encrypted declaration is refused", func(t *testing.T) {
		bad := writeRepo(t, map[string]string{
			"environments/e.yaml": string(secretstest.SOPS(t, "e.yaml", []byte("environment: e\nhosts:\n  - name: h\n    vars: {pw: Decl-Secret-1}\n"), key.Recipient)),
		})
		_, err := config.LoadRevision(bad, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), Identities: ids})
		if err == nil || !strings.Contains(err.Error(), "environments/e.yaml:1:1: the file is SOPS-encrypted: declarations are read in clear") {
			t.Fatalf("err = %v", err)
		}
	})
}
