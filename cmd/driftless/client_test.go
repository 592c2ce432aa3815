package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestMain checks that no test of the package leaves a goroutine behind:
// servers, reconcilers and daemons started by tests must all stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clientWorld is a daemon built as `driftless serve` builds it (its real
// mux, API and reconciler, local hosts in a sandbox), served over loopback,
// with environment prod applied at two revisions.
type clientWorld struct {
	d          *daemon
	srv        *httptest.Server
	sandbox    string
	tokenFile  string
	rev1, rev2 sources.Revision
}

const clientToken = "client-test-token"

func newClientWorld(t *testing.T) *clientWorld {
	t.Helper()
	dir := t.TempDir()
	w := &clientWorld{sandbox: filepath.Join(dir, "hosts"), tokenFile: filepath.Join(dir, "token")}
	if err := os.WriteFile(w.tokenFile, []byte(clientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Daemon{StateDir: filepath.Join(dir, "state"), API: config.API{Token: config.Secret{File: w.tokenFile}}}
	d, err := buildDaemon(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), serveHooks{localRoot: w.sandbox})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.close() })
	w.d = d
	for i, content := range []string{"one", "two"} {
		rev := w.revision(t, dir, i+1, content)
		if _, err := d.rec.ApplyRevision(context.Background(), rev); err != nil {
			t.Fatalf("apply %s: %v", rev.Short(), err)
		}
		w.rev1, w.rev2 = w.rev2, rev
	}
	w.srv = httptest.NewServer(d.mux(context.Background(), func() bool { return true }))
	t.Cleanup(w.srv.Close)
	return w
}

// revision writes a checkout declaring prod: two local hosts, one file.
func (w *clientWorld) revision(t *testing.T, dir string, n int, content string) sources.Revision {
	t.Helper()
	commit := strings.Repeat(fmt.Sprintf("%08x", 0xc0ffee00+n), 5)
	checkout := filepath.Join(dir, "checkouts", commit)
	env := "environment: prod\nhosts:\n  - name: h1\n    transport: local\n    roles: [app]\n  - name: h2\n    transport: local\n    roles: [app]\n" +
		"roles:\n  app:\n    - directory: /etc/app\n      mode: \"0755\"\n    - file: /etc/app/app.conf\n      content: \"" + content + "\"\n      mode: \"0644\"\n"
	if err := os.MkdirAll(filepath.Join(checkout, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(checkout, "environments", "prod.yaml"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	return sources.Revision{Source: "test", Commit: commit, Ref: "refs/heads/main", Dir: checkout, Time: time.Now()}
}

// hostFile reads the managed file on a host of the sandbox.
func (w *clientWorld) hostFile(t *testing.T, host string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.sandbox, host, "etc", "app", "app.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cli runs one client command in-process against the world's daemon.
func (w *clientWorld) cli(name string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), &cliEnv{stdout: &out, stderr: &errb}, append([]string{name, "-addr", w.srv.URL}, args...))
	return code, out.String(), errb.String()
}

// rows splits a table's lines into fields, header first.
func rows(out string) [][]string {
	var r [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		r = append(r, strings.Fields(line))
	}
	return r
}

func TestClientStatus(t *testing.T) {
	w := newClientWorld(t)
	short := w.rev2.Commit[:12]
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"all environments", nil},
		{"one environment", []string{"prod"}},
	} {
		t.Run(tc.name+" table", func(t *testing.T) {
			code, out, stderr := w.cli("status", tc.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := rows(out)
			if len(r) != 2 || strings.Join(r[0], " ") != "NAME APPLIED STATE DRIFT_RESOURCES LAST_RESULT LAST_RUN HOSTS_UP" {
				t.Fatalf("table:\n%s", out)
			}
			row := r[1]
			if strings.Join(row[:5], " ") != "prod "+short+" synced 0 success" || row[len(row)-1] != "2/2" || row[len(row)-2] != "ago" {
				t.Fatalf("row %q", row)
			}
		})
		t.Run(tc.name+" json", func(t *testing.T) {
			code, out, _ := w.cli("status", append([]string{"-o", "json"}, tc.args...)...)
			var got status.EnvStatus
			if len(tc.args) == 0 {
				var list []status.EnvStatus
				if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
					t.Fatalf("json list: %v\n%s", err, out)
				}
				got = list[0]
			} else if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			if code != 0 || got.Name != "prod" || got.Applied != w.rev2.Commit || got.State != "synced" || len(got.Hosts) != 2 {
				t.Fatalf("exit %d: %+v", code, got)
			}
		})
	}
	t.Run("unknown environment", func(t *testing.T) {
		code, out, stderr := w.cli("status", "nope")
		if code != 1 || out != "" || !strings.Contains(stderr, `404 Not Found: unknown environment "nope"`) {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})
	t.Run("never applied", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		_ = l.Close()
		dir := t.TempDir()
		y := "environment: edge\nhosts:\n  - name: far\n    address: 127.0.0.1\n    port: " + port + "\n    user: nobody\n    resources:\n      - directory: /srv/edge\n"
		if err := os.MkdirAll(filepath.Join(dir, "environments"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "environments", "edge.yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		rev := sources.Revision{Source: "test", Commit: strings.Repeat("e", 40), Dir: dir, Time: time.Now()}
		if _, err := w.d.rec.ApplyRevision(context.Background(), rev); err == nil {
			t.Fatal("edge applied with an unreachable host")
		}
		code, out, stderr := w.cli("status", "edge")
		r := rows(out)
		// An empty revision is a dash, so the row keeps all its columns.
		if code != 0 || len(r) != 2 || strings.Join(r[1][:5], " ") != "edge - failed 0 failed" || r[1][len(r[1])-1] != "0/1" {
			t.Fatalf("exit %d %s\n%s", code, stderr, out)
		}
	})
	t.Run("daemon not running", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "http://" + l.Addr().String()
		_ = l.Close()
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), &cliEnv{stdout: &out, stderr: &errb}, []string{"status", "-addr", addr})
		if code != 1 || !strings.Contains(errb.String(), "connection refused") {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	})
}

func TestClientSync(t *testing.T) {
	w := newClientWorld(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-it"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no token", []string{"prod"}, 1, "401 Unauthorized: this endpoint needs an Authorization: Bearer <token> header"},
		{"wrong token", []string{"-token-file", wrong, "prod"}, 1, "401 Unauthorized: wrong API token"},
		{"token file missing", []string{"-token-file", wrong + ".gone", "prod"}, 1, "read secret from file"},
		{"no environment", []string{"-token-file", w.tokenFile}, 2, "usage: driftless sync [flags] ENVIRONMENT"},
		{"unknown environment", []string{"-token-file", w.tokenFile, "nope"}, 1, `404 Not Found: unknown environment "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(w.sandbox, "h1", "etc", "app", "app.conf"), []byte("edited"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, stderr := w.cli("sync", tc.args...)
			if code != tc.code || out != "" || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			if got := w.hostFile(t, "h1"); got != "edited" {
				t.Fatalf("a refused sync changed the host: %q", got)
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		code, out, stderr := w.cli("sync", "-token-file", w.tokenFile, "prod")
		want := "sync prod: state synced, applied " + w.rev2.Commit[:12] + ", last_result success\n"
		if code != 0 || out != want {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		if got := w.hostFile(t, "h1"); got != "two" {
			t.Fatalf("sync did not correct the drift: %q", got)
		}
	})
	t.Run("json, token from the environment", func(t *testing.T) {
		t.Setenv("DRIFTLESS_API_TOKEN_FILE", w.tokenFile)
		code, out, stderr := w.cli("sync", "-o", "json", "prod")
		var st status.EnvStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || st.Name != "prod" || st.Applied != w.rev2.Commit {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, stderr)
		}
	})
}

func TestClientRollback(t *testing.T) {
	w := newClientWorld(t)
	tok := []string{"-token-file", w.tokenFile}
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		want    string
		content string
	}{
		{"no token", []string{"-to", w.rev1.Commit[:12], "prod"}, 1, "401 Unauthorized", "two"},
		{"commit too short", append(tok, "-to", "abc", "prod"), 1, `400 Bad Request: to must be a commit id of 7 hex characters at least, got "abc"`, "two"},
		{"commit never applied", append(tok, "-to", strings.Repeat("d", 40), "prod"), 1, "409 Conflict: environment prod has no successful run of commit dddddddd", "two"},
		{"to a commit", append(tok, "-to", w.rev1.Commit[:12], "prod"), 0, "rollback prod: state synced, applied " + w.rev1.Commit[:12] + ", last_result success\n", "one"},
		// Without -to: the newest good revision other than the applied one.
		{"default", append(tok, "prod"), 0, "rollback prod: state synced, applied " + w.rev2.Commit[:12] + ", last_result success\n", "two"},
		{"json", append(tok, "-o", "json", "-to", w.rev1.Commit, "prod"), 0, `"applied": "` + w.rev1.Commit + `"`, "one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := w.cli("rollback", tc.args...)
			got := stderr
			if tc.code == 0 {
				got = out
			}
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			for _, h := range []string{"h1", "h2"} {
				if c := w.hostFile(t, h); c != tc.content {
					t.Fatalf("%s holds %q, want %q", h, c, tc.content)
				}
			}
		})
	}
	// The rollbacks are in the history the CLI shows.
	_, out, _ := w.cli("history", "-n", "3", "prod")
	r := rows(out)
	if len(r) != 4 || r[1][4] != "rollback" || r[1][3] != w.rev1.Commit[:12] || r[2][4] != "rollback" || r[2][3] != w.rev2.Commit[:12] {
		t.Fatalf("history after rollbacks:\n%s", out)
	}
}

// TestDaemonMuxServesStatusPage: the daemon's mux carries the status page
// next to health and metrics.
func TestDaemonMuxServesStatusPage(t *testing.T) {
	w := newClientWorld(t)
	for _, tc := range []struct{ path, contentType, want string }{
		{"/", "text/html; charset=utf-8", w.rev2.Commit[:12]},
		{"/environments/prod", "text/html; charset=utf-8", `<td>h2</td><td class="up">up</td>`},
		{"/healthz", "text/plain; charset=utf-8", "ok"},
		{"/api/v1/environments", "application/json", `"name": "prod"`},
	} {
		resp, err := w.srv.Client().Get(w.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(body.String(), tc.want) {
			t.Errorf("GET %s: %d %s, %v\n%s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), err, body.String())
		}
	}
}
