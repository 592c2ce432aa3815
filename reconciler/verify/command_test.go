package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/targets"
)

func TestCommand(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "app.conf"), []byte("port=8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := hostTransport(t, root)
	short := config.Duration(200 * time.Millisecond)

	for _, tc := range []struct {
		name      string
		check     config.Check
		transport targets.Transport
		ok        bool
		attempts  int
		reason    []string
		notReason []string
	}{
		{"host exit 0", config.Check{Command: "true"}, tr, true, 1, []string{`"true" on host exited 0`}, nil},
		{"host sees its root", config.Check{Command: `grep -q port=8080 "$DRIFTLESS_ROOT/etc/app.conf"`}, tr, true, 1, nil, nil},
		{"host file missing", config.Check{Command: `cat "$DRIFTLESS_ROOT/etc/missing.conf"`, On: "host"}, tr, false, 1,
			[]string{"expected exit 0, got exit 1", "No such file or directory"}, nil},
		{"host last stderr lines", config.Check{Command: `for i in 1 2 3 4 5 6 7 8; do echo "line$i" >&2; done; exit 3`}, tr, false, 1,
			[]string{"got exit 3", "line4 | line5 | line6 | line7 | line8"}, []string{"line3"}},
		{"host timeout", config.Check{Command: "sleep 30", Timeout: short}, tr, false, 1, []string{"no answer within 200ms"}, nil},
		{"host without transport", config.Check{Command: "true"}, nil, false, 1, []string{"no transport to the host"}, nil},
		{"local exit 0", config.Check{Command: "test -d /", On: "local"}, nil, true, 1, []string{"on local exited 0"}, nil},
		{"local exit 7", config.Check{Command: "echo broken >&2; exit 7", On: "local", Retries: 2}, nil, false, 3,
			[]string{"expected exit 0, got exit 7", "broken"}, nil},
		{"local killed by signal", config.Check{Command: "kill -9 $$", On: "local"}, nil, false, 1, []string{"got exit 137"}, nil},
		// The shell's child keeps stdout open; killing the process group
		// is what lets this attempt end at its timeout.
		{"local timeout kills children", config.Check{Command: "sleep 30; echo done", On: "local", Timeout: short}, nil, false, 1,
			[]string{"no answer within 200ms"}, nil},
		{"unknown on", config.Check{Command: "true", On: "elsewhere"}, tr, false, 0, []string{`on: "elsewhere" is not one of host, local`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRunner(t)
			res := r.Check(context.Background(), tc.check, &config.Host{Name: "app-1"}, tc.transport)
			if res.OK != tc.ok || res.Attempts != tc.attempts || res.Kind != "command" {
				t.Fatalf("got %+v, want ok=%v attempts=%d", res, tc.ok, tc.attempts)
			}
			for _, want := range tc.reason {
				if !strings.Contains(res.Reason, want) {
					t.Errorf("reason %q lacks %q", res.Reason, want)
				}
			}
			for _, not := range tc.notReason {
				if strings.Contains(res.Reason, not) {
					t.Errorf("reason %q has %q", res.Reason, not)
				}
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"\n\n  \n", "empty"},
		{"a\n\nb\n", "a | b"},
		{"1\n2\n3\n4\n5\n6\n7", "3 | 4 | 5 | 6 | 7"},
	} {
		if got := lastLines([]byte(tc.in), 5); got != tc.want {
			t.Errorf("lastLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 4}
	for _, s := range []string{"ab", "cdef", "g"} {
		if n, err := tl.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := string(tl.Bytes()); got != "defg" {
		t.Errorf("tail kept %q, want defg", got)
	}
}
