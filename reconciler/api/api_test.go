package api

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseRollback: any body either is refused with an error or names
// no commit or a lower-case hex commit of 7 characters at least.
func FuzzParseRollback(f *testing.F) {
	for _, s := range []string{"", " \n", `{"to": "ABCDEF0"}`, `{"to": ""}`, `{"to": "abc"}`, `{"to": 5}`, `{"x": 1}`, `{"to": "abcdef0"} {}`, "null", "[]", `{"to": "  abcdef01  "}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		to, err := parseRollback(body)
		if err != nil {
			if to != "" || err.Error() == "" {
				t.Fatalf("error %v with commit %q", err, to)
			}
			return
		}
		if to != "" && (len(to) < 7 || strings.Trim(to, "0123456789abcdef") != "") {
			t.Fatalf("accepted commit %q from %q", to, body)
		}
	})
}

// FuzzBearer: a token is returned only from a Bearer header, never empty
// or padded, and it round-trips.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer x", "bearer  x ", "Basic x", "Bearer", "Bearer ", "BEARER a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearer(h)
		if !ok {
			if tok != "" {
				t.Fatalf("refused %q but returned %q", h, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) || !strings.HasPrefix(strings.ToLower(h), "bearer ") {
			t.Fatalf("%q gave token %q", h, tok)
		}
		if again, ok := bearer("Bearer " + tok); !ok || again != tok {
			t.Fatalf("token %q does not round-trip: %q %v", tok, again, ok)
		}
	})
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(-300 * time.Millisecond), "just now"},
		{now.Add(-90*time.Second - 400*time.Millisecond), "1m30s ago"},
	} {
		if got := ago(now, tc.at); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}
