package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/reconciler/api"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/secretstest"
	"github.com/driftless/driftless/test/syncbuf"
)

// secretRepo is a revision's files with secrets encrypted by the sops and
// age commands: a SOPS variables file written into a template and into an
// env file's value, a SOPS binary file and an age file as whole contents,
// a SOPS-encrypted unit file; and an env file marked secret. v tells
// versions apart. The env files and the unit are world-readable, so that
// only their being secret keeps them masked.
func secretRepo(t *testing.T, recipient, v, verify string) map[string]string {
	vars := "db_password: Pa55-db-" + v + "\n"
	res := etc +
		"    - file: /etc/app.conf\n      template: files/app.conf.tmpl\n      mode: \"0600\"\n" +
		"    - file: /etc/tls.key\n      source: files/tls.key\n      mode: \"0600\"\n" +
		"    - file: /etc/token\n      source: files/token.age\n      mode: \"0600\"\n" +
		"    - env: /etc/app.env\n      mode: \"0644\"\n      vars: {DB_PASSWORD: \"{{ .Vars.db_password }}\", LEVEL: info}\n" +
		"    - env: /etc/api.env\n      mode: \"0644\"\n      secret: true\n      vars: {API_KEY: ENV-API-KEY-" + v + "}\n" +
		"    - service: app\n      unit_source: files/app.service\n" +
		fileRes("/etc/public.conf", "public-"+v+"\n")
	env := strings.Replace(envYAML("prod", []string{"h1"}, nil, res, verify), "    roles: [all]\n", "    roles: [all]\n    vars_files: [secrets/app.yaml]\n", 1)
	return map[string]string{
		"environments/prod.yaml": env,
		"secrets/app.yaml":       string(secretstest.SOPS(t, "app.yaml", []byte(vars), recipient)),
		"files/app.conf.tmpl":    "user=app\npassword={{ .Vars.db_password }}\n",
		"files/tls.key":          string(secretstest.SOPS(t, "tls.key", []byte("TLS-PRIVATE-"+v+"\n"), recipient)),
		"files/token.age":        string(secretstest.Age(t, []byte("AGE-TOKEN-"+v+"\n"), true, recipient)),
		"files/app.service":      string(secretstest.SOPS(t, "app.service", []byte("[Service]\nEnvironment=KEY=UNIT-KEY-"+v+"\nExecStart=/bin/true\n"), recipient)),
	}
}

// secretHostFiles are the files secretRepo's version v writes on a host.
func secretHostFiles(v string) map[string]string {
	return map[string]string{
		"/etc/app.conf":                   "user=app\npassword=Pa55-db-" + v + "\n",
		"/etc/tls.key":                    "TLS-PRIVATE-" + v + "\n",
		"/etc/token":                      "AGE-TOKEN-" + v + "\n",
		"/etc/app.env":                    "DB_PASSWORD=Pa55-db-" + v + "\nLEVEL=info\n",
		"/etc/api.env":                    "API_KEY=ENV-API-KEY-" + v + "\n",
		"/etc/systemd/system/app.service": "[Service]\nEnvironment=KEY=UNIT-KEY-" + v + "\nExecStart=/bin/true\n",
	}
}

// TestSecretsNeverLeave applies secrets decrypted from files of the real
// sops and age commands, rolls a second version back after a failing
// verification, corrects drift on them and previews a third version as a
// pull request; then it searches every output (logs at debug level, plans,
// reports to Git hosts and notifiers, history, the API, the status page,
// metrics and the store's file) for the secret values and their base64
// forms. Rollback must still restore the first version.
func TestSecretsNeverLeave(t *testing.T) {
	key := secretstest.NewKey(t, t.TempDir(), "key.txt")
	ids, err := secrets.LoadIdentities([]string{key.File})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	f := newFixture(t)
	f.reg = prometheus.NewRegistry()
	f.r = f.restarted(func(o *Options) {
		o.Load = func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: f.sandbox, Identities: ids})
		}
		o.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
		o.Registerer = f.reg
		// The real service driver, which in a sandbox writes the unit file.
		o.Drivers = targets.Drivers()
	})
	ctx := context.Background()
	// A check whose name a template writes a decrypted value into: its
	// metric label (made before it first runs) and results hide it.
	rev1 := f.revision(secretRepo(t, key.Recipient, "v1", "verify:\n  - name: \"db {{ .Vars.db_password }}\"\n    command: \"true\"\n"))
	if runs, err := f.r.ApplyRevision(ctx, rev1); err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("rev1: %+v %v", runs, err)
	}
	for p, want := range secretHostFiles("v1") {
		if got := f.hostFile("h1", p); got != want {
			t.Fatalf("%s = %q, want %q", p, got, want)
		}
	}
	// While rev2 is verified its journal is open: read the store file then,
	// before the rollback frees (but does not zero) the journal's pages.
	var during []byte
	f.ver.gate = func(string, string) {
		if during == nil {
			during, _ = os.ReadFile(f.store.Path())
		}
	}
	rev2 := f.revision(secretRepo(t, key.Recipient, "v2", "verify:\n  - name: broken\n    command: \"exit 1\"\n"))
	if runs, _ := f.r.ApplyRevision(ctx, rev2); len(runs) != 1 || runs[0].Result != status.ResultRolledBack {
		t.Fatalf("rev2: %+v", runs)
	}
	f.ver.gate = nil
	if !bytes.Contains(during, []byte("public-v2")) {
		t.Fatal("the store file read during the verification does not hold the journal of rev2")
	}
	for p, want := range secretHostFiles("v1") {
		if got := f.hostFile("h1", p); got != want {
			t.Fatalf("%s after the rollback = %q, want v1 restored", p, got)
		}
	}
	f.writeHostFile("h1", "/etc/tls.key", "hand edit\n")
	f.writeHostFile("h1", "/etc/api.env", "API_KEY=hand-edit\n")
	f.writeHostFile("h1", "/etc/systemd/system/app.service", "[Service]\nExecStart=/bin/false\n")
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	for p, want := range secretHostFiles("v1") {
		if got := f.hostFile("h1", p); got != want {
			t.Fatalf("%s after the drift pass = %q", p, got)
		}
	}
	rev3 := f.revision(secretRepo(t, key.Recipient, "v3", ""))
	plans, err := f.r.PlanRevision(ctx, rev3)
	if err != nil {
		t.Fatal(err)
	}
	// A pull request is loaded as the daemon loads one: decrypting
	// nothing. Its author adds a template that would write the first byte
	// of the password as the file's size, which a decrypting preview
	// would publish.
	f.r.opts.LoadUntrusted = func(dir string) (*config.Revision, error) {
		return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: f.sandbox, SkipDecrypt: true, Untrusted: true})
	}
	revs := runDaemon(t, f)
	prFiles := secretRepo(t, key.Recipient, "v4", "")
	prFiles["environments/prod.yaml"] += "    - file: /etc/probe\n      template: files/probe.tmpl\n"
	prFiles["files/probe.tmpl"] = `{{ printf "%*d" (index .Vars.db_password 0) 0 }}`
	pr := f.revision(prFiles)
	pr.Preview, pr.PullRequest = true, 42
	revs <- pr
	eventually(t, "preview reported", func() bool { _, ok := f.rep.find(status.StatusPreview); return ok })
	preview, _ := f.rep.find(status.StatusPreview)
	undecrypted := 0
	for _, hp := range preview.Plan.Hosts {
		for _, c := range hp.Changes {
			res := map[string]bool{"file:/etc/probe": true, "file:/etc/app.conf": true, "file:/etc/tls.key": true, "file:/etc/token": true, "env:/etc/app.env": true, "service:app": true}
			if res[c.ID] != (c.Diff == undecryptedDiff) {
				t.Errorf("preview of %s: %s %q; want %q for what is encrypted or rendered with encrypted variables only", c.ID, c.Action, c.Diff, undecryptedDiff)
			}
			if c.Diff == undecryptedDiff {
				undecrypted++
			}
		}
	}
	if undecrypted != 6 {
		t.Errorf("the preview says of %d resources that they were not evaluated, want 6: %+v", undecrypted, preview.Plan)
	}

	outputs := map[string][]byte{"logs": []byte(logs.String())}
	outputs["plan"], _ = json.Marshal(plans)
	f.rep.mu.Lock()
	outputs["reports"], _ = json.Marshal(f.rep.reports)
	f.rep.mu.Unlock()
	hist, _ := f.r.History("prod", 100)
	outputs["history"], _ = json.Marshal(hist)
	if !strings.Contains(string(outputs["history"]), "secret changed") {
		t.Errorf("history does not say that a secret changed")
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("tok-for-the-test"), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.New(api.Options{Reconciler: f.r, Token: config.Secret{File: tokFile}}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{"/api/v1/environments", "/api/v1/environments/prod", "/api/v1/environments/prod/history", "/", "/environments/prod", "/environments/prod/diffs"} {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("Authorization", "Bearer tok-for-the-test")
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
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, mf := range mfs {
		_, _ = expfmt.MetricFamilyToText(&metrics, mf)
	}
	outputs["metrics"] = metrics.Bytes()
	if outputs["store"], err = os.ReadFile(f.store.Path()); err != nil {
		t.Fatal(err)
	}
	outputs["store during the rollout"] = during
	var values []string
	for _, p := range []string{"Pa55-db-", "TLS-PRIVATE-", "AGE-TOKEN-", "ENV-API-KEY-", "UNIT-KEY-"} {
		for _, v := range []string{"v1", "v2", "v3", "v4"} {
			values = append(values, p+v)
		}
	}
	for _, hit := range secretstest.Leaks(outputs, values) {
		t.Error(hit)
	}
	if !bytes.Contains(outputs["store"], []byte("public-v1")) {
		t.Error("the store file does not hold the public file's snapshot: the search would not see a clear secret either")
	}
}

// TestHostErrorsHideSecretValues: a command that fails printing a secret
// env file's value, and then its undo failing the same way, give errors
// (the run's, the history's, the logs', the reports') that name the
// failure but not the value.
func TestHostErrorsHideSecretValues(t *testing.T) {
	logs := &syncbuf.Buffer{}
	f := newFixture(t)
	f.r = f.restarted(func(o *Options) { o.Logger = zerolog.New(logs).Level(zerolog.DebugLevel) })
	const value = "HOST-ERR-KEY-1"
	res := etc +
		"    - env: /etc/api.env\n      secret: true\n      vars: {API_KEY: " + value + "}\n" +
		"    - command: leak\n      requires: [\"env:/etc/api.env\"]\n" +
		"      run: \"cat \\\"$DRIFTLESS_ROOT/etc/api.env\\\" >&2; exit 3\"\n" +
		"      undo: \"cat \\\"$DRIFTLESS_ROOT/etc/api.env\\\" >&2; exit 4\"\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
	runs, _ := f.r.ApplyRevision(context.Background(), rev)
	if len(runs) != 1 || runs[0].Result == status.ResultSuccess || !strings.Contains(runs[0].Error, "API_KEY=***") {
		t.Fatalf("runs = %+v, want a failure quoting the command's output, hidden", runs)
	}
	hist, _ := f.r.History("prod", 10)
	outputs := map[string][]byte{"logs": []byte(logs.String())}
	outputs["history"], _ = json.Marshal(hist)
	f.rep.mu.Lock()
	outputs["reports"], _ = json.Marshal(f.rep.reports)
	f.rep.mu.Unlock()
	for _, hit := range secretstest.Leaks(outputs, []string{value}) {
		t.Error(hit)
	}
}

// TestUndecryptedNeverApplied: a revision loaded without decryption (a
// loader that skips it, as previews do) is never applied: the host fails
// to plan, naming the resource, and nothing is written.
func TestUndecryptedNeverApplied(t *testing.T) {
	key := secretstest.NewKey(t, t.TempDir(), "key.txt")
	f := newFixture(t)
	f.r = f.restarted(func(o *Options) {
		o.Load = func(dir string) (*config.Revision, error) {
			return config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: f.sandbox, SkipDecrypt: true})
		}
	})
	res := etc + fileRes("/etc/public.conf", "public\n") + "    - file: /etc/token\n      source: files/token.age\n"
	rev := f.revision(map[string]string{
		"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, ""),
		"files/token.age":        string(secretstest.Age(t, []byte("NEVER-APPLIED\n"), true, key.Recipient)),
	})
	runs, _ := f.r.ApplyRevision(context.Background(), rev)
	if len(runs) != 1 || runs[0].Result == status.ResultSuccess || !strings.Contains(runs[0].Error, "file:/etc/token was not decrypted") {
		t.Fatalf("runs = %+v, want a plan failure naming the undecrypted file", runs)
	}
	for _, p := range []string{"/etc/token", "/etc/public.conf"} {
		if got := f.hostFile("h1", p); got != "<absent>" {
			t.Errorf("%s = %q: written from a revision that was not decrypted", p, got)
		}
	}
}
