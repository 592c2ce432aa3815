package config

import (
	"strings"
	"testing"
)

// TestDaemonAddresses: every network place of driftless.yaml is checked,
// each bad value refused at its own line and column, a password in a URL
// never shown; the usual good forms pass.
func TestDaemonAddresses(t *testing.T) {
	const src = "sources:\n  - name: a\n    git: {url: https://git.example/a.git}\n"
	for _, tc := range []struct {
		name, yaml string
		// want is "LINE:COL: message"; "" for a good value.
		want string
	}{
		{"listen without port", "listen: 127.0.0.1\n" + src, `1:9: listen: "127.0.0.1" is not a host:port address`},
		{"listen port too big", "listen: 127.0.0.1:70000\n" + src, `1:9: listen: "127.0.0.1:70000": port "70000" is not a number from 0 to 65535`},
		{"listen bad host", "listen: 'bad host:8080'\n" + src, `1:9: listen: "bad host:8080": "bad host" is not a host name or an IP address`},
		{"listen any interface", "listen: ':8080'\n" + src, ""},
		{"listen IPv6", "listen: '[::1]:0'\n" + src, ""},
		{"external_url no scheme", "external_url: driftless.example\n" + src, `1:15: external_url: "driftless.example" is not an http or https URL`},
		{"external_url port", "external_url: https://driftless.example:0/\n" + src, `1:15: external_url: "https://driftless.example:0/": port "0" is not a number from 1 to 65535`},
		{"external_url IPv6", "external_url: 'http://[fe80::1]:8080/'\n" + src, ""},
		{"git scheme", "sources:\n  - name: a\n    git:\n      url: ftp://git.example/a.git\n", `4:12: url: "ftp://git.example/a.git" is not an https or http or ssh or git URL`},
		{"git port", "sources:\n  - name: a\n    git:\n      url: https://git.example:99999/a.git\n", `4:12: url: "https://git.example:99999/a.git": port "99999" is not a number from 1 to 65535`},
		{"git password hidden", "sources:\n  - name: a\n    git:\n      url: 'https://u:hunter2@git example/a.git'\n", `4:12: url: "https://***@git example/a.git" is not an https or http or ssh or git URL`},
		{"git scp without path", "sources:\n  - name: a\n    git: {url: 'git@git.example:'}\n", `3:16: url: "git@git.example:" is not a Git URL`},
		{"git scp bad host", "sources:\n  - name: a\n    git: {url: 'git@git_ex ample:o/r.git'}\n", `3:16: url: "git@git_ex ample:o/r.git" is not a Git URL`},
		{"git scp", "sources:\n  - name: a\n    git: {url: 'git@git.example:ops/infra.git'}\n", ""},
		{"git ssh port", "sources:\n  - name: a\n    git: {url: 'ssh://git@git.example:2222/ops/infra.git'}\n", ""},
		{"git local path", "sources:\n  - name: a\n    git: {url: ./repos/infra}\n", ""},
		{"git file URL", "sources:\n  - name: a\n    git: {url: 'file:///srv/infra'}\n", ""},
		{"feedback base_url", src + "feedback:\n  gitea:\n    base_url: gitea.example/api/v1\n    repository: o/r\n    token: {env: T}\n",
			`6:15: base_url: "gitea.example/api/v1" is not an https or http URL`},
		{"notify webhook", src + "notify:\n  webhooks:\n    - url: hooks.example/x\n", `6:12: url: "hooks.example/x" is not an https or http URL`},
		{"notify slack port", src + "notify:\n  slack:\n    - url: https://hooks.slack.example:99999/x\n", `6:12: url: "https://hooks.slack.example:99999/x": port "99999" is not a number from 1 to 65535`},
		{"email without port", src + "notify:\n  email: {server: smtp.example, from: a@example.org, to: [b@example.org]}\n", `5:19: server: "smtp.example" is not a host:port address`},
		{"email port 0", src + "notify:\n  email: {server: 'smtp.example:0', from: a@example.org, to: [b@example.org]}\n", `5:19: server: "smtp.example:0": port "0" is not a number from 1 to 65535`},
		{"email", src + "notify:\n  email: {server: 'smtp.example:587', from: a@example.org, to: [b@example.org]}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDaemon("driftless.yaml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("accepted, want %s", tc.want)
			case !strings.Contains(err.Error(), "driftless.yaml:"+tc.want):
				t.Fatalf("error:\n%v\nwant driftless.yaml:%s", err, tc.want)
			case strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the password shows: %v", err)
			}
		})
	}
}

// TestAddressChecks: the checks of host names, dial addresses and URLs on
// values at their edges.
func TestAddressChecks(t *testing.T) {
	for _, tc := range []struct {
		check func(string) error
		value string
		ok    bool
	}{
		{checkHost, "web-1", true},
		{checkHost, "db_1.internal.example.", true},
		{checkHost, "fe80::1", true},
		{checkHost, "[fe80::1]", false},
		{checkHost, "-web", false},
		{checkHost, "web..example", false},
		{checkHost, strings.Repeat("a", 64) + ".example", false},
		{checkHost, "user@web-1", false},
		{CheckDialAddress, "[::1]:22", true},
		{CheckDialAddress, "web-1:65535", true},
		{CheckDialAddress, "web-1:65536", false},
		{CheckDialAddress, "web-1:-1", false},
		{CheckDialAddress, "web-1:+22", false},
		{CheckDialAddress, "web-1:ssh", false},
		{func(s string) error { return CheckURL(s, "http", "https") }, "https://web-1/", true},
		{func(s string) error { return CheckURL(s, "http", "https") }, "https://web-1:/", false},
		{func(s string) error { return CheckURL(s, "http", "https") }, "https://:8080/", false},
		{func(s string) error { return CheckURL(s, "http", "https") }, "http:///healthz", false},
	} {
		if err := tc.check(tc.value); (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok %v", tc.value, err, tc.ok)
		}
	}
}
