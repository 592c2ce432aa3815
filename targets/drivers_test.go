package targets

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/driftless/driftless/config"
)

// TestDriversTable checks that every row of the table is keyed by its
// driver's kind and that the kind exists in config's table of kinds, so a
// row cannot be filed under the wrong name.
func TestDriversTable(t *testing.T) {
	specs := config.KindSpecs()
	for kind, d := range Drivers() {
		if d.Kind() != kind {
			t.Errorf("row %q holds the driver of kind %q", kind, d.Kind())
		}
		if _, ok := specs[kind]; !ok {
			t.Errorf("kind %q has a driver but no spec in config.KindSpecs", kind)
		}
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
