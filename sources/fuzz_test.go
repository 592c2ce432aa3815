package sources

import (
	"net/url"
	"testing"
)

// FuzzMatchesRepo feeds webhook-supplied URLs and names to the matcher: it
// must never panic, a URL always matches itself, and a URL with credentials
// matches the same URL without them.
func FuzzMatchesRepo(f *testing.F) {
	for _, s := range []string{
		"https://github.com/team/app.git",
		"git@github.com:team/app.git",
		"ssh://git@github.com:22/team/app",
		"file:///srv/git/app.git",
		"/srv/git/app",
		"http://[::1]:80/x",
		"%zz://bad",
	} {
		f.Add(s, "team/app")
	}
	f.Fuzz(func(t *testing.T, raw, fullName string) {
		key, ok := parseRepoURL(raw)
		_ = matchesRepo(key, []string{raw, fullName}, fullName)
		if !ok {
			return
		}
		if !matchesRepo(key, []string{raw}, "") {
			t.Fatalf("%q does not match itself (key %+v)", raw, key)
		}
		u, err := url.Parse(raw)
		if err != nil || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return
		}
		u.User = url.UserPassword("bot", "secret")
		if !matchesRepo(key, []string{u.String()}, "") {
			t.Fatalf("%q with credentials does not match %q", u.String(), raw)
		}
	})
}
