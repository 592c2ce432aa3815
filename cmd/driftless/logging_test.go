package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIsTerminal: pipes, files and the null device are not terminals (the
// daemon logs JSON there, as under systemd or in a container); a
// pseudo-terminal is.
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, f := range map[string]*os.File{"pipe": w, "file": file, "null device": null} {
		if isTerminal(f) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Logf("no pseudo-terminal to check the positive case: %v", err)
		return
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("a pseudo-terminal is not taken for a terminal")
	}
}

// TestNewLogger: JSON lines with the level and fixed keys, or readable
// console lines; the level filters; a bad level is an error.
func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, false, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Str("environment", "prod").Msg("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	if line["level"] != "warn" || line["message"] != "shown" || line["environment"] != "prod" || line["time"] == nil {
		t.Errorf("JSON line %v", line)
	}

	buf.Reset()
	log, err = newLogger(&buf, true, "")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("environment", "prod").Msg("applied")
	out := buf.String()
	if json.Valid(buf.Bytes()) || !strings.Contains(out, "applied") || !strings.Contains(out, "environment=") {
		t.Errorf("console line %q", out)
	}

	if _, err := newLogger(&buf, false, "loud"); err == nil {
		t.Error("an unknown level was accepted")
	}
}
