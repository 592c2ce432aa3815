package targets

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/driftless/driftless/config"
)

// TestDriversTable checks that every row of the table is keyed by its
// driver's kind and that Kinds, the table config's loader takes, has the
// same rows, so a row cannot be filed under the wrong name.
func TestDriversTable(t *testing.T) {
	kinds := Kinds()
	for kind, d := range Drivers() {
		if d.Kind() != kind {
			t.Errorf("row %q holds the driver of kind %q", kind, d.Kind())
		}
		if k, ok := kinds[kind]; !ok || fmt.Sprintf("%T", k.NewSpec()) != fmt.Sprintf("%T", d.NewSpec()) {
			t.Errorf("kind %q: Kinds has %v, Drivers has %T", kind, k, d)
		}
	}
	if len(kinds) != len(Drivers()) {
		t.Errorf("Kinds has %d rows, Drivers %d", len(kinds), len(Drivers()))
	}
}

func TestShq(t *testing.T) {
	l := NewLocal(t.TempDir())
	for _, s := range []string{"", "plain", "it's", `"$HOME" \ $(true) ` + "`x`", "new\nline", "'''"} {
		res, err := l.Run(t.Context(), "printf %s "+shq(s), nil)
		if err != nil || res.Exit != 0 || string(res.Stdout) != s {
			t.Fatalf("%q came back as %q (%v, %s)", s, res.Stdout, err, res.Stderr)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"0640", "-rw-r-----", true},
		{"755", "-rwxr-xr-x", true},
		{"4755", "urwxr-xr-x", true},
		{"1777", "trwxrwxrwx", true},
		{"0999", "", false},
		{"17777", "", false},
		{"rw", "", false},
	}
	for _, tc := range tests {
		m, err := parseMode(tc.in)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: error %v", tc.in, err)
		}
		if tc.ok && m.String() != tc.want {
			t.Fatalf("%s: got %s, want %s", tc.in, m, tc.want)
		}
	}
}

// FuzzFrames builds the output the probe script prints for two probes
// with any output, status and stderr, and checks nextFrame cuts exactly
// those back out; and that parsing any output as a file probe never panics.
func FuzzFrames(f *testing.F) {
	f.Add([]byte("644 0 0 root root regular file\naGk="), []byte(""), uint8(0), []byte("oops"))
	f.Add([]byte("\n"), []byte("x DRIFTLESS-00 E 0 1 \n"), uint8(2), []byte{})
	f.Fuzz(func(t *testing.T, body0, body1 []byte, status uint8, stderr []byte) {
		nonce := "DRIFTLESS-" + randomHex(16)
		var out []byte
		for i, b := range [][]byte{body0, body1} {
			out = fmt.Appendf(out, "%s B %d\n%s\n%s E %d %d %s\n", nonce, i, b, nonce, i, status, base64.StdEncoding.EncodeToString(stderr))
		}
		rest := out
		for i, want := range [][]byte{body0, body1} {
			body, st, se, r, ok := nextFrame(rest, nonce, i)
			if !ok || !bytes.Equal(body, want) || st != int(status) || !bytes.Equal(se, stderr) {
				t.Fatalf("frame %d: got %q %d %q %v, want %q %d %q", i, body, st, se, ok, want, status, stderr)
			}
			rest = r
		}
		_, _ = parseFileProbe(body0)
		_, _ = (&SymlinkDriver{}).Parse(config.Resource{}, body0)
		_, _ = (&CommandDriver{}).Parse(config.Resource{}, body0)
	})
}
