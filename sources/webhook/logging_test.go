package webhook

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestBodyNeverLogged sends bodies carrying a marker (as old Gitea senders
// put the secret in the body) through every path of the handler: accepted,
// ignored, unauthorized, bad JSON, replay. The marker must not reach the log.
func TestBodyNeverLogged(t *testing.T) {
	const marker = "MARKER-7f3a9c-do-not-log"
	good := []byte(`{"secret":"` + marker + `","repository":"o/r","ref":"main","commit":"0123456789abcdef0123456789abcdef01234567"}`)
	ignored := []byte(`{"secret":"` + marker + `","repository":"nobody/follows-this","ref":"main"}`)
	badJSON := []byte(`{"secret":"` + marker + `","ref":` + marker + `}`)
	badType := []byte(`{"repository":{"x":"` + marker + `"},"ref":"main"}`)
	gitea := bytes.Replace(readCorpus(t, "gitea/push-3.json"), []byte(`"ref"`), []byte(`"note":"`+marker+`","ref"`), 1)
	r := newRig(t, nil)
	send := func(endpoint, line string, body []byte, edit func(http.Header)) {
		h := signed(endpoint, line, body)
		if edit != nil {
			edit(h)
		}
		r.do(t, endpoint, h, body)
	}
	send("generic", "Content-Type: application/json", good, nil)
	send("generic", "Content-Type: application/json", ignored, nil)
	send("generic", "Content-Type: application/json", badJSON, nil)
	send("generic", "Content-Type: application/json", badType, nil)
	send("generic", "Content-Type: application/json", good, func(h http.Header) { h.Set(DefaultGenericHeader, "sha256=00") })
	replay := signed("generic", "Content-Type: application/json", good)
	r.do(t, "generic", replay, good)
	r.do(t, "generic", replay, good)
	send("gitea", "X-Gitea-Event: push", gitea, nil)
	send("github", "X-GitHub-Event: push", badJSON, nil)
	send("github", "X-GitHub-Event: push", good, func(h http.Header) { h.Set("X-Hub-Signature-256", "sha256="+marker) })

	out := r.log.String()
	if strings.Count(out, "\n") < 10 {
		t.Fatalf("expected a log line per request, got:\n%s", out)
	}
	if strings.Contains(out, marker) || strings.Contains(out, "7f3a9c") {
		t.Fatalf("the log contains body content:\n%s", out)
	}
	if strings.Contains(r.answers.String(), marker) {
		t.Fatalf("an answer quotes the body: %s", r.answers.String())
	}
	for _, result := range []string{ResultAccepted, ResultIgnored, ResultBadRequest, ResultUnauthorized, ResultReplay} {
		if !strings.Contains(out, `"result":"`+result+`"`) {
			t.Errorf("no %s line in the log", result)
		}
	}
}

// TestCorpusThroughHandler sends every corpus payload, signed as its sender
// would, through the full handler: each must be answered 200 or 202, and
// pushes and the four pull request actions must reach the target.
func TestCorpusThroughHandler(t *testing.T) {
	r := newRig(t, nil)
	want := 0
	for _, c := range corpusCases() {
		body := readCorpus(t, c.file)
		status := r.do(t, c.endpoint, signed(c.endpoint, c.header, body), body)
		if status != http.StatusOK && status != http.StatusAccepted {
			t.Errorf("%s on /hooks/%s: status %d", c.file, c.endpoint, status)
		}
		switch {
		case c.kind == "push" || c.kind == "tag_push":
			want++
		case c.kind == "pull_request" && c.action != "edited":
			want++
		}
	}
	if got := len(r.target.events()); got != want {
		t.Errorf("target was offered %d events, want %d", got, want)
	}
	if strings.Contains(r.log.String(), `"secret":"12345"`) || strings.Contains(r.log.String(), "12345\"") {
		t.Errorf("the deprecated secret field of Gitea payloads reached the log")
	}
}
