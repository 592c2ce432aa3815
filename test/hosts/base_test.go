package hosts

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromDeb822(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"bookworm stanza", "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n", "http://mirror.invalid/debian"},
		{"security only", "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n", ""},
		{"source only", "Types: deb-src\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n", ""},
		{"second stanza", "Types: deb\nURIs: http://a.invalid/x\nSuites: sid\n\nTypes: deb\n# a comment\nURIs: http://b.invalid/debian\nSuites: bookworm\n", "http://b.invalid/debian"},
		{"empty URIs", "Types: deb\nURIs:\nSuites: bookworm\n", ""},
		{"garbage", "::::\n\n\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.sources")
			if err := os.WriteFile(p, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := mirrorFromDeb822(p); got != tt.want {
				t.Fatalf("mirror %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/bad\09`: `/bad\09`}
	for in, want := range tests {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMirrorFromList(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"plain", "deb http://mirror.invalid/debian bookworm main\n", "http://mirror.invalid/debian"},
		{"options", "deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm main\n", "http://mirror.invalid/debian"},
		{"one-word options", "deb [trusted=yes] http://mirror.invalid/debian bookworm main\n", "http://mirror.invalid/debian"},
		{"other suite first", "deb http://a.invalid/d bookworm-security main\ndeb-src http://b.invalid/d bookworm main\ndeb http://c.invalid/d bookworm main\n", "http://c.invalid/d"},
		{"unclosed options", "deb [arch=amd64\n", ""},
		{"comment", "# deb http://mirror.invalid/debian bookworm main\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sources.list")
			if err := os.WriteFile(p, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := mirrorFromList(p); got != tt.want {
				t.Fatalf("mirror %q, want %q", got, tt.want)
			}
		})
	}
}
