package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/agent"
	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// TestEveryKindRefusesInvalidValues is the hand-written table of invalid
// values of every resource kind and every check kind. Each is refused by
// `driftless validate` (the real load path) with file:line:column, and
// the same value given directly to the kind is refused too: by its
// validation, by Observe (what plan runs) and by the driver's Apply; a
// check by verify.Validate and by the runner, before any attempt. Each
// resource value is also sent, after a valid step, straight to a running
// `driftless agent` over its protocol: the agent refuses the request
// before touching anything (the valid step's folder is not made). The
// kinds' one validation makes all these answers the same.
func TestEveryKindRefusesInvalidValues(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	resources := []struct{ item, want string }{
		{"file: relative/path\n  content: x", `file path "relative/path" must be absolute`},
		{"file: /etc/a/../b\n  content: x", "must be clean"},
		{"file: /etc/x\n  content: x\n  mode: \"999\"", `mode: "999" is not an octal mode`},
		{"file: /etc/x\n  content: x\n  owner: \"bad user\"", `owner: "bad user" is not a user or group name`},
		{"file: /etc/x\n  content: x\n  group: \"g;rm\"", `group: "g;rm" is not a user or group name`},
		{"file: /etc/x\n  content: x\n  state: gone", `state: "gone" is not one of present, absent`},
		{"directory: /srv/d/", "must be clean"},
		{"directory: /srv/d\n  mode: rwx", `mode: "rwx" is not an octal mode`},
		{"symlink: /srv/l", "a symlink resource needs target"},
		{"symlink: /srv/l\n  target: \"a\\tb\"", "holds a control character"},
		{"env: /etc/app.env\n  vars: {BAD-KEY: x}", `vars: "BAD-KEY" is not a valid variable name`},
		{"env: /etc/app.env\n  vars: {K: \"a\\rb\"}", "the value of K holds a newline or NUL"},
		{"env: etc/app.env\n  vars: {K: v}", "must be absolute"},
		{"command: migrate\n  creates: tmp/done\n  run: \"true\"", `creates path "tmp/done" must be absolute`},
		{"command: migrate\n  dir: \"/srv/../etc\"\n  run: \"true\"", `dir path "/srv/../etc" must be clean`},
		{"command: migrate", "a command resource needs run"},
		{"command: \"mi\\tgrate\"\n  run: \"true\"", "holds a control character"},
		{"command: \"mi\\tgrate\"\n  run: \"true\"", "holds a control character"},
		{"package: \"nginx;rm\"", `package: "nginx;rm" is not a valid package name`},
		{"package: \"a:b:c\"", `package: "a:b:c" is not a valid package name`},
		{"package: nginx\n  version: \"1.0 && x\"", `version: "1.0 && x" has characters no package version has`},
		{"package: nginx\n  state: installed", `state: "installed" is not one of present, absent, latest`},
		{"service: \"-app\"", `service: "-app" is not a valid unit name`},
		{"service: " + long(300), "is not a valid unit name"},
		{"service: app\n  state: started", `state: "started" is not one of running, stopped`},
		{"service: app\n  on_notify: bounce", `on_notify: "bounce" is not one of restart, reload`},
		{"artifact: /opt/app\n  url: ftp://a.example/a.tar\n  sha256: " + strings.Repeat("0", 64), `url: "ftp://a.example/a.tar" is not an http or https URL`},
		{"artifact: /opt/app\n  url: file:///etc/shadow\n  sha256: " + strings.Repeat("0", 64), `url: "file:///etc/shadow" is not an http or https URL`},
		{"artifact: /opt/app\n  url: https://a.example:99999/a.tar\n  sha256: " + strings.Repeat("0", 64), `port "99999" is not a number from 1 to 65535`},
		{"artifact: /opt/app\n  url: https://a.example/a.tar\n  sha256: abc", "sha256: expected 64 lowercase hexadecimal digits"},
		{"artifact: /opt/app\n  url: https://a.example/a.tar\n  sha256: " + strings.Repeat("0", 64) + "\n  keep: -1", "keep: must not be negative"},
		{"artifact: /opt/app\n  url: https://a.example/a.tar\n  sha256: " + strings.Repeat("0", 64) + "\n  format: rar", `format: "rar" is not one of tar, tar.gz, tgz, zip`},
		{"artifact: /opt/app\n  url: https://a.example/a.tar\n  sha256: " + strings.Repeat("0", 64) + "\n  owner: \"a b\"", `owner: "a b" is not OWNER, OWNER:GROUP or :GROUP`},
		{"sysctl: \"net..ipv4\"\n  value: \"1\"", `sysctl: "net..ipv4" is not a valid kernel parameter name`},
		{"sysctl: \"net.ipv4 x\"\n  value: \"1\"", "is not a valid kernel parameter name"},
		{"sysctl: net.ipv4.ip_forward", "a sysctl resource needs value"},
		{"user: " + long(40), "is not a valid user name (at most 32 characters"},
		{"user: Root", `user: "Root" is not a valid user name`},
		{"user: app\n  uid: -1", "uid: must not be negative"},
		{"user: app\n  home: srv/app", `home path "srv/app" must be absolute`},
		{"user: app\n  shell: bash", `shell path "bash" must be absolute`},
		{"user: app\n  groups: [\"wheel;x\"]", `groups: "wheel;x" is not a valid group name`},
		{"group: " + long(33), "is not a valid group name"},
		{"group: app\n  gid: -5", "gid: must not be negative"},
		{"address: 10.0.0.5\n  interface: eth0", `address: "10.0.0.5" is not an address in CIDR form`},
		{"address: 10.0.0.5/24\n  interface: " + long(16), "is not an interface name (at most 15 characters"},
		{"address: 10.0.0.5/24\n  interface: \"eth 0\"", `interface: "eth 0" is not an interface name`},
		{"address: 10.0.0.5/24", "an address resource needs interface"},
		{"route: {to: 10.1.0.0/33, via: 10.0.0.1}", `to: "10.1.0.0/33" is not a destination in CIDR form`},
		{"route: {to: 10.1.0.0/16, via: 10.0.0.300}", `via: "10.0.0.300" is not an IP address`},
		{"route: {to: 10.1.0.0/16, dev: " + long(16) + "}", "is not an interface name (at most 15 characters"},
		{"route: {to: 10.1.0.0/16}", "a route needs via or dev"},
		{"firewall: {name: " + long(80) + ", allow: [tcp/22]}", "may hold only letters, digits, - and _, at most 64 of them"},
		{"firewall: {name: \"my rules\", allow: [tcp/22]}", `name: "my rules" may hold only letters`},
		{"firewall: {allow: [tcp/70000]}", `allow: "tcp/70000" has a port outside 1-65535`},
		{"firewall: {allow: [tcp/+80]}", `allow: "tcp/+80" is not a rule such as`},
		{"firewall: {deny: [sctp/9]}", `deny: "sctp/9" is not a rule such as`},
		{"firewall: {allow: [tcp/9000-8000]}", "has a port outside 1-65535 or a reversed range"},
		{"firewall: {allow: [tcp/22], from: somewhere}", `from: "somewhere" is not an address or a CIDR prefix`},
		{"firewall: {allow: [tcp/22], policy: reject}", `policy: "reject" is not one of accept, drop`},
		{"firewall: {}", "a firewall needs allow, deny or policy"},
	}
	checks := []struct{ item, want string }{
		{"http: ftp://example.invalid/", `http: "ftp://example.invalid/" is not an http or https URL`},
		{"http: \"http://127.0.0.1:0/\"", `port "0" is not a number from 1 to 65535`},
		{"http: http://127.0.0.1:8080/\n  expect_body: \"(unclosed\"", "expect_body: error parsing regexp: missing closing )"},
		{"http: http://127.0.0.1:8080/\n  expect_status: 42", "expect_status: 42 is not an HTTP status"},
		{"tcp: 10.0.0.1", `tcp: "10.0.0.1" is not a host:port address`},
		{"tcp: \"10.0.0.1:70000\"", `port "70000" is not a number from 1 to 65535`},
		{"tcp: \"bad_host!:22\"", "is not a host name or an IP address"},
		{"command: \"true\"\n  on: elsewhere", `on: "elsewhere" is not one of host, local`},
		{"prometheus: up\n  server: http://127.0.0.1:9090\n  op: \"~\"", `op: "~" is not one of <, <=, >, >=, ==, !=`},
		{"prometheus: up\n  server: prom:9090", `server: "prom:9090" is not an http or https URL`},
		{"prometheus: up", "a prometheus check needs server"},
		{"junit: make test\n  report: out/report.xml", `report: "out/report.xml" is not an absolute path`},
		{"junit: make test\n  max_failures: -1", "max_failures: must not be negative"},
		{"junit: make test\n  on: remote", `on: "remote" is not one of host, local`},
	}
	posRe := func(want string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^environments/e\.yaml:(\d+):(\d+): .*` + regexp.QuoteMeta(want))
	}
	validate := func(t *testing.T, env, want string) {
		t.Helper()
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "environments"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "environments", "e.yaml"), []byte(env), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := run(t, "validate", dir)
		if code != 1 {
			t.Fatalf("validate exit %d, want 1 (stdout %q, stderr %q)", code, stdout, stderr)
		}
		m := posRe(want).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("validate did not say %q at a file:line:column; it said:\n%s", want, stderr)
		}
		if line, _ := strconv.Atoi(m[1]); line < 6 || m[2] == "0" {
			t.Fatalf("validate placed %q at line %s column %s, not in the declaration", want, m[1], m[2])
		}
	}
	indent := func(item, by string) string { return strings.ReplaceAll(item, "\n", "\n"+by) }
	kinds, drivers := targets.Kinds(), targets.Drivers()
	ask := startAgent(t)
	seen := map[string]bool{}
	for _, tc := range resources {
		t.Run(tc.item, func(t *testing.T) {
			head := "environment: e\nhosts:\n  - name: h\n    transport: local\n    resources:\n"
			validate(t, head+"      - "+indent(tc.item, "      ")+"\n", tc.want)

			// The same value, given directly to the kind.
			res := decodeResource(t, kinds, tc.item)
			seen[res.Kind] = true
			if err := config.Problems(kinds[res.Kind].Validate(res.Name, res.Spec)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the kind's validation said %v, want %q", err, tc.want)
			}
			local := targets.NewLocal(t.TempDir())
			if _, err := targets.Observe(t.Context(), local, drivers, []config.Resource{res}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("observe said %v, want %q", err, tc.want)
			}
			if err := drivers[res.Kind].Apply(t.Context(), local, res, targets.State{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply said %v, want %q", err, tc.want)
			}
			// The same value, sent to the agent after a valid step.
			made := filepath.Join(t.TempDir(), "made")
			valid := config.Resource{Kind: "directory", Name: made, Spec: &targets.DirectorySpec{}}
			resp := ask(t, agent.Request{Op: agent.OpApply, Steps: []targets.Step{
				{Op: targets.StepApply, Resource: valid}, {Op: targets.StepApply, Resource: res}}})
			if resp.Applied != 1 || !strings.Contains(resp.ApplyErr, "refused step 2, nothing of it applied") || !strings.Contains(resp.ApplyErr, tc.want) {
				t.Fatalf("the agent answered %+v, want step 1 done and a refusal of step 2 saying %q", resp, tc.want)
			}
			if fi, err := os.Lstat(made); err != nil || !fi.IsDir() {
				t.Fatalf("the valid step before the refused one was not done: %s: %v", made, err)
			}
		})
	}
	for kind := range kinds {
		if !seen[kind] {
			t.Errorf("kind %s has no invalid value in the table", kind)
		}
	}
	checkKinds := map[string]bool{}
	for _, tc := range checks {
		t.Run(tc.item, func(t *testing.T) {
			head := "environment: e\nhosts:\n  - name: h\n    transport: local\nverify:\n"
			validate(t, head+"  - "+indent(tc.item, "  ")+"\n", tc.want)

			var c config.Check
			if err := yaml.Unmarshal([]byte(strings.ReplaceAll(tc.item, "\n  ", "\n")), &c); err != nil {
				t.Fatal(err)
			}
			checkKinds[c.Kind()] = true
			if err := verify.Validate(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify.Validate said %v, want %q", err, tc.want)
			}
			res := verify.New(verify.Options{}).Check(t.Context(), c, &config.Host{Name: "h"}, targets.NewLocal(t.TempDir()))
			if res.OK || res.Attempts != 0 || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("the runner gave %+v, want a refusal before any attempt saying %q", res, tc.want)
			}
		})
	}
	for kind := range verify.Kinds() {
		if !checkKinds[kind] {
			t.Errorf("check kind %s has no invalid value in the table", kind)
		}
	}
}

// decodeResource decodes one resource item as the table writes it (its
// kind key first, its other keys indented by two) into the kind's spec,
// without config's loader.
func decodeResource(t *testing.T, kinds config.Kinds, item string) config.Resource {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(item, "\n  ", "\n")), &n); err != nil {
		t.Fatal(err)
	}
	m := n.Content[0]
	kind := m.Content[0].Value
	row := kinds[kind]
	spec := row.NewSpec()
	res := config.Resource{Kind: kind, Spec: spec}
	if mk, ok := row.(config.MappingKind); ok {
		if err := m.Content[1].Decode(spec); err != nil {
			t.Fatal(err)
		}
		res.Name = mk.Name(spec)
		return res
	}
	res.Name = m.Content[1].Value
	rest := &yaml.Node{Kind: yaml.MappingNode, Content: m.Content[2:]}
	if err := rest.Decode(spec); err != nil {
		t.Fatal(err)
	}
	return res
}

// startAgent runs `driftless agent` as the daemon starts it, its standard
// input and output on pipes, for the test's whole life; ask sends it one
// request line and reads its answer line.
func startAgent(t *testing.T) func(t *testing.T, req agent.Request) agent.Response {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int)
	go func() {
		code := dispatch(context.Background(), &cliEnv{stdin: inR, stdout: outW, stderr: io.Discard}, []string{"agent"})
		outW.Close()
		done <- code
	}()
	t.Cleanup(func() {
		inW.Close()
		if code := <-done; code != 0 {
			t.Errorf("driftless agent exited %d", code)
		}
	})
	answers := bufio.NewReader(outR)
	var id uint64
	return func(t *testing.T, req agent.Request) agent.Response {
		t.Helper()
		id++
		req.ID = id
		line, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inW.Write(append(line, '\n')); err != nil {
			t.Fatalf("send to the agent: %v", err)
		}
		b, err := answers.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read the agent's answer: %v", err)
		}
		var resp agent.Response
		if err := json.Unmarshal(b, &resp); err != nil || resp.ID != id || resp.Err != "" {
			t.Fatalf("the agent's answer %s: %v", b, err)
		}
		return resp
	}
}
