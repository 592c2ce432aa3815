package config

import "testing"

func TestSuggest(t *testing.T) {
	kinds := []string{"address", "artifact", "command", "directory", "env", "file", "firewall", "group", "package", "route", "service", "symlink", "sysctl", "user"}
	tests := []struct{ word, want string }{
		{"servce", "service"},
		{"pakage", "package"},
		{"directroy", "directory"},
		{"fiel", "file"},
		{"cronjob", ""},
		{"x", ""},
		{"env", "env"},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			if got := suggest(tt.word, kinds); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}
