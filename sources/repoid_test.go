package sources

import "testing"

func TestRepoID(t *testing.T) {
	want := "git.example:8443/team/app"
	for _, u := range []string{
		"https://git.example:8443/team/app.git", "HTTPS://user:tok@GIT.example:8443/team/app/",
		"ssh://git@git.example:8443/team/app", "http://git.example:8443/team/app",
	} {
		if got := RepoID(u); got != want {
			t.Errorf("RepoID(%q) = %q, want %q", u, got, want)
		}
	}
	if got := RepoID("git@git.example:team/app.git"); got != "git.example/team/app" {
		t.Errorf("scp-like: %q", got)
	}
	if RepoID("https://git.example/team/app") == RepoID("https://git.example/team/other") {
		t.Error("two repositories have one identity")
	}
}
