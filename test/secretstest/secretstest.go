// Package secretstest makes encrypted fixtures with the real command line
// tools, sops and age, for the tests of every package that reads secrets.
package secretstest

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/test/need"
)

// Key is an age identity made by age-keygen: its file and its recipient.
type Key struct {
	File      string
	Recipient string
}

// NewKey runs age-keygen into a file of dir.
func NewKey(t testing.TB, dir, name string) Key {
	t.Helper()
	keygen := need.Tools(t, "making age identities", "age-keygen")
	file := filepath.Join(dir, name)
	run(t, dir, nil, keygen, "-o", file)
	pub := run(t, dir, nil, keygen, "-y", file)
	return Key{File: file, Recipient: strings.TrimSpace(string(pub))}
}

// sops finds the sops command: on PATH, or where go install puts it.
func sops(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("sops"); err == nil {
		return p
	}
	// GOBIN when set, else GOPATH/bin, as test/install-deps.sh does.
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		gobin, gopath, _ := strings.Cut(string(out), "\n")
		if gobin == "" {
			gobin = filepath.Join(strings.TrimSpace(gopath), "bin")
		}
		p := filepath.Join(gobin, "sops")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	need.Missing(t, "SOPS fixtures need the sops command, which is not installed (test/install-deps.sh builds it)")
	return ""
}

// SOPS encrypts plain, written to a file named name (its extension decides
// the format, as for the sops command), to the recipients, and returns the
// encrypted file's content.
func SOPS(t testing.TB, name string, plain []byte, recipients ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, name)
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	// The folder has no .sops.yaml and the environment no SOPS_ keys: the
	// command line says everything.
	return run(t, dir, []string{"SOPS_AGE_KEY_FILE=", "SOPS_AGE_RECIPIENTS="}, sops(t), "encrypt", "--age", strings.Join(recipients, ","), in)
}

// Age encrypts plain to the recipients with the age command, armored
// (-a) or binary.
func Age(t testing.TB, plain []byte, armor bool, recipients ...string) []byte {
	t.Helper()
	bin := need.Tools(t, "age fixtures", "age")
	args := []string{}
	if armor {
		args = append(args, "-a")
	}
	for _, r := range recipients {
		args = append(args, "-r", r)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(plain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("age %v: %v: %s", args, err, stderr.String())
	}
	return out
}

func run(t testing.TB, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", filepath.Base(name), args, err, stderr.String())
	}
	return out
}

// WriteFile writes content to dir/name and returns its path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Leaks searches every output for each value and its base64 forms
// (standard and URL alphabets, at each of the three alignments a value
// may take inside a longer encoded text) and returns one line per hit.
func Leaks(outputs map[string][]byte, values []string) []string {
	var out []string
	for _, value := range values {
		for name, data := range outputs {
			for _, form := range encodedForms(value) {
				if bytes.Contains(data, []byte(form)) {
					out = append(out, name+" holds "+value+" (as "+form+")")
				}
			}
		}
	}
	return out
}

func encodedForms(value string) []string {
	forms := []string{value}
	for shift := 0; shift < 3; shift++ {
		n := shift + len(value)
		// Only the characters that depend on the value's bytes alone: not
		// the first ones, which mix in the bytes before it, nor the last
		// one of a partial group, which mixes in the bytes after it.
		start, end := []int{0, 2, 3}[shift], n/3*4+n%3
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString([]byte(strings.Repeat("\x00", shift) + value))
			forms = append(forms, s[start:end])
		}
	}
	return forms
}
