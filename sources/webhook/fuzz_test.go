package webhook

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/driftless/driftless/sources"
)

// fuzzParser feeds arbitrary event names and bodies to one provider's parser
// and signature check. Neither may panic; a parse either fails with
// ErrBadPayload without quoting the body, or yields an event that keeps the
// promises finish makes.
func fuzzParser(f *testing.F, endpoint, eventHeader string) {
	for _, c := range corpusCases() {
		if c.endpoint != endpoint {
			continue
		}
		_, value, _ := strings.Cut(c.header, ": ")
		f.Add(value, readCorpus(f, c.file))
	}
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"zz"}`))
	f.Add("push", []byte(`{"ref":1e999}`))
	f.Add("", []byte(`{"repository":"o/r","ref":"main","commit":"0123456789abcdef0123456789abcdef01234567"}`))
	f.Add("", []byte(`{"repository":"o/r","ref":"refs/tags/v1","deleted":true}`))
	// A Bitbucket push of several refs, one of them deleted.
	f.Add("repo:push", []byte(`{"repository":{"full_name":"o/r"},"push":{"changes":[{"new":{"type":"branch","name":"a","target":{"hash":"0123abcd"}}},{"old":{"type":"tag","name":"v1","target":{"hash":"0123abcd"}}}]}}`))
	p := providers("")[endpoint]
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := http.Header{}
		h.Set(eventHeader, event)
		h.Set("Content-Type", "application/json")
		// The signature header is fuzzed too: any value must be refused or
		// checked, never crash the verifier.
		for _, name := range []string{"X-Hub-Signature-256", "X-Hub-Signature", "X-Gitea-Signature", "X-Gitlab-Token", DefaultGenericHeader} {
			h.Set(name, event)
		}
		if err := p.verify(h, body, []byte("fuzz-secret")); err == nil && event != "fuzz-secret" &&
			event != "sha256="+SignHex([]byte("fuzz-secret"), body) && event != SignHex([]byte("fuzz-secret"), body) {
			t.Fatalf("verify accepted signature %q", event)
		}
		// Every event of the delivery is checked: a Bitbucket push gives one
		// per changed ref.
		evs, err := p.events(h, body)
		if len(evs) == 0 {
			t.Fatal("no event, not even a partial one")
		}
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error does not wrap ErrBadPayload: %v", err)
			}
			// The event name is the sender's own header and may be quoted;
			// nothing else of the request may be.
			msg := strings.ReplaceAll(err.Error(), event, "")
			if len(body) >= 12 && strings.Contains(msg, string(body)) {
				t.Fatalf("error quotes the body: %v", err)
			}
			return
		}
		for _, ev := range evs {
			checkFuzzedEvent(t, ev)
		}
	})
}

// checkFuzzedEvent checks what a parser may hand on to the Git source.
func checkFuzzedEvent(t *testing.T, ev sources.Event) {
	t.Helper()
	if ev.Provider == "" {
		t.Fatal("event without a provider")
	}
	if ev.Kind == KindPush || ev.Kind == KindTagPush {
		if !strings.HasPrefix(ev.Ref, "refs/") {
			t.Fatalf("push with ref %q", ev.Ref)
		}
		// A push may omit its commit (the source then fetches the ref),
		// but a deleted ref never has one.
		if ev.Deleted && ev.Commit != "" {
			t.Fatalf("deleted ref with commit %q", ev.Commit)
		}
	}
	if ev.Commit != "" && !isHex(ev.Commit) {
		t.Fatalf("commit %q is not hex", ev.Commit)
	}
	if bytes.ContainsAny([]byte(ev.Ref+ev.BaseRef+ev.Repository), " \n\t\x00") {
		t.Fatalf("names with spaces or control characters: %+v", ev)
	}
}

func FuzzGitHub(f *testing.F)    { fuzzParser(f, "github", "X-GitHub-Event") }
func FuzzGitea(f *testing.F)     { fuzzParser(f, "gitea", "X-Gitea-Event") }
func FuzzGogs(f *testing.F)      { fuzzParser(f, "gogs", "X-Gogs-Event") }
func FuzzGitLab(f *testing.F)    { fuzzParser(f, "gitlab", "X-Gitlab-Event") }
func FuzzBitbucket(f *testing.F) { fuzzParser(f, "bitbucket", "X-Event-Key") }
func FuzzGeneric(f *testing.F)   { fuzzParser(f, "generic", "X-Request-Id") }

// FuzzPushDecodeAsStandard checks that the faster decoder of push payloads
// reads what encoding/json reads: the same fields, and an error exactly
// when encoding/json gives one.
func FuzzPushDecodeAsStandard(f *testing.F) {
	for _, c := range corpusCases() {
		f.Add(readCorpus(f, c.file))
	}
	f.Add([]byte(`{"ref":"refs/heads/main","REF":"refs/heads/x","after":"ab","deleted":true}`))
	f.Add([]byte(`{"ref":"a\ud800b","repository":{"full_name":"o/r","ssh_url":null}}`))
	f.Add([]byte(`{"ref":"x","after":"a"} trailing`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast, std githubPush
		errFast := json.Unmarshal(body, &fast)
		errStd := stdjson.Unmarshal(body, &std)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("decoder error %v, encoding/json error %v", errFast, errStd)
		}
		if errStd == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("decoded %+v, encoding/json decoded %+v", fast, std)
		}
	})
}
