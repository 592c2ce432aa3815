package targets

import (
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

// FuzzParse feeds any answer to the parsers of the path kinds, sysctl
// and command (an answer comes from the host): none panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte("644 0 0 root root regular file\naGk="))
	f.Add([]byte("symlink\n/x\n"))
	f.Add([]byte("creates=yes\nunless=0\n"))
	f.Add([]byte("value=1\npersisted=1\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		_, _ = parseFileState(out)
		_, _ = (&SymlinkDriver{}).Parse(config.Resource{}, out)
		_, _ = (&CommandDriver{}).Parse(config.Resource{}, out)
		_, _ = (&SysctlDriver{}).Parse(config.Resource{}, out)
		_, _ = (&DirectoryDriver{}).Parse(config.Resource{}, out)
	})
}
