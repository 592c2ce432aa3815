package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/test/secretstest"
)

// TestSecretsValidatePlanApply runs validate, plan and apply on a
// repository holding files encrypted by the sops and age commands: without
// an identity validate says where decryption was not checked and apply
// fails clearly, touching nothing; with the wrong identity too; with the
// right one the files are applied and plan shows no secret.
func TestSecretsValidatePlanApply(t *testing.T) {
	const unitFile = "[Service]\nEnvironment=TOKEN=UNIT-SECRET-BYTES\nExecStart=/bin/true\n"
	keys := t.TempDir()
	key := secretstest.NewKey(t, keys, "key.txt")
	other := secretstest.NewKey(t, keys, "other.txt")
	repo := t.TempDir()
	secretstest.WriteFile(t, repo, "environments/e.yaml", `environment: e
hosts:
  - name: h
    transport: local
    vars_files: [secrets/vars.yaml]
    resources:
      - directory: /etc
      - file: /etc/tls.key
        source: files/tls.key
        mode: "0600"
      - file: /etc/app.conf
        template: files/app.conf.tmpl
      - file: /etc/token
        source: files/token.age
      - env: /etc/app.env
        vars: {PASSWORD: "{{ .Vars.password }}"}
      - service: app
        unit_source: files/app.service
`)
	secretstest.WriteFile(t, repo, "files/app.service", string(secretstest.SOPS(t, "app.service", []byte(unitFile), key.Recipient)))
	secretstest.WriteFile(t, repo, "secrets/vars.yaml", string(secretstest.SOPS(t, "vars.yaml", []byte("password: Very-Secret-Pw\n"), key.Recipient)))
	secretstest.WriteFile(t, repo, "files/tls.key", string(secretstest.SOPS(t, "tls.key", []byte("TLS-KEY-BYTES\n"), key.Recipient)))
	secretstest.WriteFile(t, repo, "files/token.age", string(secretstest.Age(t, []byte("AGE-TOKEN-BYTES\n"), false, key.Recipient)))
	secretstest.WriteFile(t, repo, "files/app.conf.tmpl", "password={{ .Vars.password }}\n")
	secretValues := []string{"Very-Secret-Pw", "TLS-KEY-BYTES", "AGE-TOKEN-BYTES", "UNIT-SECRET-BYTES"}
	noSecret := func(what, out string) {
		t.Helper()
		for _, v := range secretValues {
			if strings.Contains(out, v) {
				t.Errorf("%s shows the secret %s:\n%s", what, v, out)
			}
		}
	}

	code, stdout, stderr := run(t, "validate", repo)
	if code != 0 {
		t.Fatalf("validate without identity: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"environments/e.yaml:5:17: encrypted file: decryption was not checked",
		"environments/e.yaml:9:17: encrypted file: decryption was not checked",
		"environments/e.yaml:14:17: encrypted file: decryption was not checked",
		"environments/e.yaml:18:22: encrypted file: decryption was not checked",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate without identity does not say %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = run(t, "validate", "--age-key-file", other.File, repo)
	if code != 1 || !strings.Contains(stderr, `environments/e.yaml:9:17: source: "files/tls.key" is SOPS-encrypted and cannot be decrypted: none of the configured age identities can decrypt it`) {
		t.Fatalf("validate with the wrong identity: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `environments/e.yaml:18:22: unit_source: "files/app.service" is SOPS-encrypted and cannot be decrypted: none of the configured age identities can decrypt it`) {
		t.Errorf("validate with the wrong identity does not name the unit_source:\n%s", stderr)
	}
	if code, stdout, stderr = run(t, "validate", "--age-key-file", key.File, repo); code != 0 || strings.Contains(stdout, "not checked") {
		t.Fatalf("validate with the identity: exit %d\n%s%s", code, stdout, stderr)
	}

	root := t.TempDir()
	for _, args := range [][]string{{}, {"--age-key-file", other.File}} {
		code, stdout, stderr := run(t, append(append([]string{"apply", "--sandbox-root", root}, args...), repo)...)
		if code != 1 || !strings.Contains(stderr, "cannot be decrypted") {
			t.Fatalf("apply %v: exit %d, want 1 and the decryption error\n%s%s", args, code, stdout, stderr)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Fatalf("apply %v failed but touched the sandbox: %v", args, entries)
		}
	}

	code, stdout, stderr = run(t, "plan", "--sandbox-root", root, "--age-key-file", key.File, repo)
	if code != 0 || !strings.Contains(stdout, "secret changed") {
		t.Fatalf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	noSecret("plan", stdout+stderr)
	code, stdout, stderr = run(t, "plan", "-o", "json", "--sandbox-root", root, "--age-key-file", key.File, repo)
	if code != 0 {
		t.Fatalf("plan -o json: exit %d\n%s", code, stderr)
	}
	noSecret("plan -o json", stdout+stderr)
	code, stdout, stderr = run(t, "plan", "-o", "yaml", "--sandbox-root", root, "--age-key-file", key.File, repo)
	if code != 0 || !strings.Contains(stdout, "secret changed") {
		t.Fatalf("plan -o yaml: exit %d\n%s%s", code, stdout, stderr)
	}
	noSecret("plan -o yaml", stdout+stderr)
	code, stdout, stderr = run(t, "apply", "--log-level", "debug", "--sandbox-root", root, "--age-key-file", key.File, repo)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, stdout, stderr)
	}
	noSecret("apply", stdout+stderr)
	for p, want := range map[string]string{"/etc/tls.key": "TLS-KEY-BYTES\n", "/etc/app.conf": "password=Very-Secret-Pw\n", "/etc/token": "AGE-TOKEN-BYTES\n",
		"/etc/app.env": "PASSWORD=Very-Secret-Pw\n", "/etc/systemd/system/app.service": unitFile} {
		got, err := os.ReadFile(filepath.Join(root, "h", p))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestSecretUnitWithoutIdentity: a repository whose only encrypted file is
// a service's unit_source is not applied at all without the identity.
func TestSecretUnitWithoutIdentity(t *testing.T) {
	key := secretstest.NewKey(t, t.TempDir(), "key.txt")
	repo := t.TempDir()
	secretstest.WriteFile(t, repo, "environments/e.yaml", `environment: e
hosts:
  - name: h
    transport: local
    resources:
      - directory: /etc
      - file: /etc/plain
        content: "plain\n"
      - service: app
        unit_source: files/app.service
`)
	secretstest.WriteFile(t, repo, "files/app.service", string(secretstest.Age(t, []byte("[Service]\nExecStart=/bin/true\n"), true, key.Recipient)))
	root := t.TempDir()
	code, stdout, stderr := run(t, "apply", "--sandbox-root", root, repo)
	if code != 1 || !strings.Contains(stderr, `environments/e.yaml:10:22: unit_source: "files/app.service" is age-encrypted and cannot be decrypted: the daemon has no age identity`) {
		t.Fatalf("apply: exit %d, want 1 and the decryption error\n%s%s", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("apply failed but touched the sandbox: %v", entries)
	}
}
