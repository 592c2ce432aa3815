package sources

import (
	"regexp"
	"strings"
)

// userinfoPattern finds the credentials part of URLs written with a scheme
// ("https://user:token@host/..."), wherever they appear in a text.
var userinfoPattern = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// RedactURL removes the user name and password of a URL ("https://user:tok@h/x"
// becomes "https://***@h/x"). A token often sits in the user name, so both
// go. Text that is not a URL with credentials is returned unchanged.
func RedactURL(s string) string {
	return userinfoPattern.ReplaceAllString(s, "${1}***@")
}

// redactor removes known secrets and URL credentials from texts that may
// reach a log line or an error (go-git's errors sometimes quote the URL).
type redactor struct {
	secrets []string
}

// newRedactor remembers the secrets to hide; empty and very short ones are
// ignored, since replacing them would garble unrelated text.
func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// String returns s with every secret and every URL's credentials replaced.
func (r redactor) String(s string) string {
	s = RedactURL(s)
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return s
}

// Err wraps err so that its message is redacted; errors.Is and errors.As
// still see the original error.
func (r redactor) Err(err error) error {
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
