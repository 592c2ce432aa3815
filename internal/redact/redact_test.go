package redact

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:pass@github.com/a/b.git", "https://***@github.com/a/b.git"},
		{"https://ghp_TOKEN123@github.com/a/b", "https://***@github.com/a/b"},
		{"https://TOKEN@host", "https://***@host"},
		{`fetch "https://u:p@h/x": 401`, `fetch "https://***@h/x": 401`},
		{`Get "https://u:p@h/x?mail=a@b": EOF`, `Get "https://***@h/x?mail=a@b": EOF`},
		{"https://u:p@ss@host/x", "https://***@host/x"},
		{"https://github.com/a/b", "https://github.com/a/b"},
		{"https://host/path@x", "https://host/path@x"},
		{"git@github.com:a/b.git", "git@github.com:a/b.git"},
		{"ssh://git@host:22/a", "ssh://***@host:22/a"},
		{"/srv/git/repo", "/srv/git/repo"},
		{"a https://x:y@h1/ and http://z@h2 end", "a https://***@h1/ and http://***@h2 end"},
		{"://u:p@h", "://u:p@h"},
		{"", ""},
		{"x9p://u@h", "x9p://***@h"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactor(t *testing.T) {
	r := New("s3cr3t-token", "", "abc")
	err := r.Err(&fs.PathError{Op: "auth s3cr3t-token", Path: "https://a:b@h/", Err: fs.ErrPermission})
	if got := err.Error(); got != "auth *** https://***@h/: permission denied" {
		t.Errorf("redacted error = %q", got)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("the redacted error does not unwrap to its cause")
	}
	if r.Err(nil) != nil {
		t.Error("Err(nil) is not nil")
	}
	if got := (Redactor{}).String("abc https://t@h"); got != "abc https://***@h" {
		t.Errorf("zero Redactor: %q", got)
	}
}

// FuzzURL checks that a URL's user name and password never survive
// redaction, whatever text surrounds the URL.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://user:pass@github.com/a/b.git", "fetch https://tok@h/x: 401", "ssh://git@host:22/a", ""} {
		f.Add(s, "s3cr3tvalue", "tokenuser")
	}
	f.Fuzz(func(t *testing.T, prefix, secret, user string) {
		if len(secret) < 4 || len(user) < 4 || strings.ContainsAny(secret+user, "@/ \t\n\r:?#%\"'<>*") {
			return
		}
		in := prefix + " https://" + user + ":" + secret + "@example.invalid/repo.git trailer"
		got := URL(in)
		if !strings.HasSuffix(got, " https://***@example.invalid/repo.git trailer") {
			t.Fatalf("URL(%q) = %q still holds the credentials", in, got)
		}
		if got := New(secret).String(prefix + secret + prefix); strings.Contains(got, secret) {
			t.Fatalf("Redactor left %q in %q", secret, got)
		}
	})
}
