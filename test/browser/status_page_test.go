// Package browser tests the status page in a real browser: Debian's
// chromium, driven headless over the DevTools protocol by chromedp, against
// a live `driftless serve` that has done real runs.
package browser

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/driftless/driftless/test/need"
)

const token = "browser-test-token"

// daemon is a running `driftless serve` over a local folder source, its
// one local host in a sandbox.
type daemon struct {
	url, repo, sandbox string
}

// startDaemon builds the binary and starts it; it stops with the test.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "driftless")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/driftless").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	d := &daemon{repo: filepath.Join(dir, "repo"), sandbox: filepath.Join(dir, "sandbox")}
	writeRepo(t, d.repo, "one", false)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "driftless.yaml")
	conf := fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: %s\ndrift_interval: 1s\napi:\n  token: {file: %s}\nsources:\n  - name: infra\n    local:\n      path: %s\n      interval: 500ms\n",
		filepath.Join(dir, "state"), tokenFile, d.repo)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg, "--sandbox-root", d.sandbox, "--log-level", "info")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line struct {
				Message, Listen string
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "driftless started" && !sent {
				addr <- line.Listen
				sent = true
			}
		}
	}()
	select {
	case a := <-addr:
		d.url = "http://" + a
	case <-time.After(time.Minute):
		t.Fatal("the daemon did not start within a minute")
	}
	return d
}

// writeRepo declares environment web: one local host, one file, drift
// only reported; with failing set, a verification that always fails.
func writeRepo(t *testing.T, repo, content string, failing bool) {
	t.Helper()
	env := "environment: web\ndrift: warn\nhosts:\n  - name: local\n    transport: local\n    resources:\n" +
		"      - directory: /etc/app\n        mode: \"0755\"\n" +
		"      - file: /etc/app/app.conf\n        content: \"" + content + "\\n\"\n        mode: \"0644\"\n"
	if failing {
		env += "verify:\n  - name: health\n    command: 'echo unhealthy >&2; false'\n"
	}
	if err := os.MkdirAll(filepath.Join(repo, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed, so the source never reads half a file.
	tmp := filepath.Join(repo, ".web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(repo, "environments", "web.yaml")); err != nil {
		t.Fatal(err)
	}
}

// status reads the environment from the API.
func (d *daemon) status(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(d.url + "/api/v1/environments/web")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &st)
	return st
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// console collects what the browser reports: console errors and
// warnings, uncaught exceptions, and log entries (CSP violations and
// failed loads are reported there).
type console struct {
	mu    sync.Mutex
	lines []string
}

func (c *console) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, s)
}

func (c *console) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// TestStatusPageInBrowser: after a success, a rollback and a drift, the
// overview and the environment's pages show drift age per environment and
// host, the error class, each run's changed resources with their actions,
// and the diffs only to the token holder; the browser reports no console
// error and no CSP violation.
func TestStatusPageInBrowser(t *testing.T) {
	chromium := need.Tools(t, "the status page's browser test", "chromium")
	d := startDaemon(t)

	eventually(t, "the first apply", func() bool { return d.status(t)["last_result"] == "success" })
	writeRepo(t, d.repo, "two", true)
	eventually(t, "the rollback", func() bool { return d.status(t)["last_result"] == "rolled_back" })
	managed := filepath.Join(d.sandbox, "local", "etc", "app", "app.conf")
	if err := os.WriteFile(managed, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the drift to be seen", func() bool {
		n, _ := d.status(t)["drift_resources"].(float64)
		return n == 1
	})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	var c console
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				c.add(fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			c.add("exception: " + e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			c.add(fmt.Sprintf("log %s (%s): %s %s", e.Entry.Level, e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the runtime domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the log domain: %v", err)
	}
	page := func(path string) string {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(d.url+path),
			chromedp.WaitVisible(chromedp.CSS("body")),
			// Open every collapsed list of changed resources (DevTools
			// evaluates this; the page itself runs no script).
			chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("details").forEach(d => { d.open = true })`),
		); err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		return strings.Join(strings.Fields(text), " ")
	}
	overview := page("/")
	envPage := page("/environments/web")
	for _, tc := range []struct{ page, text, want string }{
		{"/", overview, "state drifted"},
		{"/", overview, "last run rolled_back"},
		{"/", overview, "verification error"},
		{"/", overview, "1 resource(s) drifted, for"},
		{"/", overview, "local up 1 resource(s), for"},
		{"/", overview, "rolled_back"},
		{"/", overview, "success"},
		{"/environments/web", envPage, "create file:/etc/app/app.conf on local"},
		{"/environments/web", envPage, "update file:/etc/app/app.conf on local"},
		{"/environments/web", envPage, "echo unhealthy"},
		{"/environments/web", envPage, "with each change's diff"},
	} {
		if !strings.Contains(tc.text, tc.want) {
			t.Errorf("%s lacks %q:\n%s", tc.page, tc.want, tc.text)
		}
	}
	if strings.Contains(envPage, "+two") {
		t.Errorf("the page shows a diff without the API token:\n%s", envPage)
	}

	// The token holder sees the diffs (basic authentication, as a browser
	// asks for it: any user name, the token as password).
	basic := base64.StdEncoding.EncodeToString([]byte("operator:" + token))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Basic " + basic}}); err != nil {
		t.Fatal(err)
	}
	diffs := page("/environments/web/diffs")
	if !strings.Contains(diffs, "+two") || !strings.Contains(diffs, "-one") {
		t.Errorf("the token holder's page lacks the diff of the rolled back change:\n%s", diffs)
	}
	for _, l := range c.all() {
		t.Errorf("the browser reported: %s", l)
	}

	// The listener does see a violation: a script put into the page is
	// refused by its policy, and the browser says so.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`document.body.appendChild(Object.assign(document.createElement("script"), {textContent: "document.title = 'ran'"}))`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the browser to report the refused script", func() bool {
		for _, l := range c.all() {
			if strings.Contains(l, "Content Security Policy") {
				return true
			}
		}
		return false
	})
	if title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`)); err != nil || title == "ran" {
		t.Errorf("a script ran in the page: title %q, %v", title, err)
	}
}
