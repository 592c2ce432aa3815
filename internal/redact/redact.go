// Package redact is the one place that hides credentials before a text
// reaches a log line, an error, an API answer or a Git host: the user name
// and password of every URL in the text, and secrets the caller knows.
package redact

import (
	"strings"
)

// URL returns s with the credentials of every URL in it replaced by "***"
// ("https://user:tok@h/x" becomes "https://***@h/x"). A token often sits in
// the user name ("https://TOKEN@host/"), so the user name goes as well as
// the password. s may be a bare URL or any text quoting URLs (an error
// message); text without a URL with credentials is returned unchanged.
// Unlike url.URL.Redacted, it works on text that does not parse and never
// keeps the user name.
func URL(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			break
		}
		authStart := i + len("://")
		if !hasScheme(rest[:i]) {
			b.WriteString(rest[:authStart])
			rest = rest[authStart:]
			continue
		}
		// The authority ends where Go's URL parser ends it ('/', '?', '#'),
		// or at what cannot be part of a URL in a text (space, quote). Its
		// credentials run to the last '@', since a password may hold one.
		end := strings.IndexAny(rest[authStart:], "/?#\"'<> \t\r\n")
		if end < 0 {
			end = len(rest) - authStart
		}
		at := strings.LastIndexByte(rest[authStart:authStart+end], '@')
		b.WriteString(rest[:authStart])
		if at >= 0 {
			b.WriteString("***")
			rest = rest[authStart+at:]
		} else {
			rest = rest[authStart:]
		}
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(rest)
	return b.String()
}

// hasScheme reports whether before ends with a URL scheme: a letter
// followed by letters, digits, '+', '-' or '.'.
func hasScheme(before string) bool {
	n := 0
	for n < len(before) {
		c := before[len(before)-1-n]
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			break
		}
		n++
	}
	for n > 0 && !isLetter(before[len(before)-n]) {
		n--
	}
	return n > 0
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool  { return isLetter(c) || c >= '0' && c <= '9' }

// Redactor hides known secrets as well as URL credentials, for texts that
// may quote a secret (go-git's errors sometimes quote the URL, a password
// may appear in a server's answer). Its zero value hides URL credentials only.
type Redactor struct {
	secrets []string
}

// New remembers the secrets to hide; empty and very short ones are
// ignored, since replacing them would garble unrelated text.
func New(secrets ...string) Redactor {
	var r Redactor
	for _, s := range secrets {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// String returns s with every secret and every URL's credentials replaced.
func (r Redactor) String(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return URL(s)
}

// Err wraps err so that its message is redacted; errors.Is and errors.As
// still see the original error.
func (r Redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.String(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
