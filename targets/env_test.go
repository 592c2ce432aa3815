package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
)

func envRes(name string, spec EnvSpec) config.Resource {
	return config.Resource{Kind: "env", Name: name, Spec: &spec}
}

func TestEnvConverges(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "etc/environment")
	orig := "# managed in part by driftless\nPATH=/usr/bin:/bin\nLANG=C\n\nexport OLD='kept value'\n"
	writeTestFile(t, root, "/etc/environment", orig, 0o644)
	r := envRes("/etc/environment", EnvSpec{Vars: map[string]string{
		"LANG":    "C.UTF-8",
		"APP_URL": "http://10.0.0.1:8080/x?a=b",
		"GREET":   `say "hi" $HOME`,
	}})

	c := expectChange(t, l, r, Update, "+ APP_URL", "+ GREET", "~ LANG")
	if strings.Contains(c.Diff, "PATH") || strings.Contains(c.Diff, "C.UTF-8") {
		t.Fatalf("the diff names an unchanged key or shows a value:\n%s", c.Diff)
	}
	changes := converge(t, l, r)
	want := "# managed in part by driftless\nPATH=/usr/bin:/bin\nLANG=C.UTF-8\n\nexport OLD='kept value'\n" +
		"APP_URL=\"http://10.0.0.1:8080/x?a=b\"\nGREET=\"say \\\"hi\\\" \\$HOME\"\n"
	assertFile(t, p, want, 0o644)
	assertShellReads(t, p, "GREET", `say "hi" $HOME`)
	assertShellReads(t, p, "APP_URL", "http://10.0.0.1:8080/x?a=b")

	// A variable edited behind its back.
	writeTestFile(t, root, "/etc/environment", strings.Replace(want, "LANG=C.UTF-8", "LANG=fr_FR", 1), 0o644)
	expectChange(t, l, r, Update, "~ LANG")
	converge(t, l, r)
	assertFile(t, p, want, 0o644)

	// A variable deleted behind its back.
	writeTestFile(t, root, "/etc/environment", strings.Replace(want, "LANG=C.UTF-8\n", "", 1), 0o644)
	expectChange(t, l, r, Update, "+ LANG")
	converge(t, l, r)

	restore(t, l, []config.Resource{r}, changes)
	assertFile(t, p, orig, 0o644)
}

func TestEnvExclusiveAndCreate(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	p := filepath.Join(root, "app.env")
	r := envRes("/app.env", EnvSpec{Vars: map[string]string{"A": "1"}, Mode: "0600"})
	changes := converge(t, l, r)
	assertFile(t, p, "A=1\n", 0o600)

	writeTestFile(t, root, "/app.env", "# note\nA=1\nEXTRA=x\n", 0o600)
	assertNoop(t, l, r) // not exclusive: the extra key stays.
	rx := envRes("/app.env", EnvSpec{Vars: map[string]string{"A": "1"}, Mode: "0600", Exclusive: true})
	expectChange(t, l, rx, Update, "- EXTRA")
	converge(t, l, rx)
	assertFile(t, p, "# note\nA=1\n", 0o600)

	// Restore of "did not exist" removes the file.
	restore(t, l, []config.Resource{r}, changes)
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("file still there after restore: %v", err)
	}
}

func TestEnvRejectsNewline(t *testing.T) {
	root := t.TempDir()
	l := NewLocal(root)
	r := envRes("/e", EnvSpec{Vars: map[string]string{"K": "two\nlines"}})
	err := Drivers()["env"].Apply(context.Background(), l, r, State{})
	if err == nil || !strings.Contains(err.Error(), "newline") {
		t.Fatalf("got %v, want a newline error", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "e")); !os.IsNotExist(err) {
		t.Fatal("a file was written despite the error")
	}
}

func TestParseEnvLine(t *testing.T) {
	tests := []struct {
		line, key, val string
		ok             bool
	}{
		{"A=1\n", "A", "1", true},
		{"export B = two \n", "B", "two", true},
		{`C="a \"q\" \\ b"`, "C", `a "q" \ b`, true},
		{"D='it''s'", "D", "it''s", true},
		{"# E=1", "", "", false},
		{"  ", "", "", false},
		{"1X=bad", "", "", false},
		{"no equals", "", "", false},
		{"E=", "E", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			k, v, ok := parseEnvLine(tc.line)
			if k != tc.key || v != tc.val || ok != tc.ok {
				t.Fatalf("got %q %q %v, want %q %q %v", k, v, ok, tc.key, tc.val, tc.ok)
			}
		})
	}
}

// FuzzEnvMerge checks on any existing file and any value that merging
// sets the value so that it reads back the same, keeps other lines, and
// that merging again changes nothing.
func FuzzEnvMerge(f *testing.F) {
	f.Add("A=1\n# c\nB=\"x y\"\n", "B", `v"$\`)
	f.Add("", "K", "")
	f.Add("K", "K", "plain")
	f.Fuzz(func(t *testing.T, old, key, val string) {
		if !validEnvKey(key) || strings.ContainsAny(val, "\n\x00") || strings.ContainsAny(old, "\r\x00") {
			return
		}
		vars := map[string]string{key: val}
		merged, _ := mergeEnv(old, vars, false)
		found := false
		for _, line := range splitLines(merged) {
			if k, v, ok := parseEnvLine(line); ok && k == key {
				found = true
				if v != val {
					t.Fatalf("%s reads back as %q, want %q\n%s", key, v, val, merged)
				}
			}
		}
		if !found {
			t.Fatalf("%s not set in\n%s", key, merged)
		}
		again, changed := mergeEnv(merged, vars, false)
		if again != merged || len(changed) != 0 {
			t.Fatalf("a second merge changed %v:\n%q\n%q", changed, merged, again)
		}
	})
}

// assertShellReads sources the file in sh and checks a variable's value,
// so the quoting is proven by a real shell, not by our own parser.
func assertShellReads(t *testing.T, file, key, want string) {
	t.Helper()
	res, err := NewLocal("").Run(context.Background(), ". "+shq(file)+"; printf %s \"$"+key+"\"", nil)
	if err != nil || res.Exit != 0 {
		t.Fatalf("sourcing %s: %v %s", file, err, res.Stderr)
	}
	if string(res.Stdout) != want {
		t.Fatalf("sh reads %s as %q, want %q", key, res.Stdout, want)
	}
}
