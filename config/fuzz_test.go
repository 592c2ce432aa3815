package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseEnvironment feeds arbitrary bytes to the environment and role
// decoders, as a repository's author could. The loader must never panic,
// and every error must point into the file it came from.
func FuzzParseEnvironment(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "environments", "*.y*ml"))
	roles, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "roles", "*.y*ml"))
	for _, p := range append(seeds, roles...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("environment: e\nhosts:\n  - &h {name: x, roles: [*h]}\n"))
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "t.tmpl"), []byte("{{ .Vars.port }}"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &loader{dir: dir, root: dir, roles: map[string]*roleDef{}, files: map[string][]byte{}, brokenRoles: map[string]bool{}}
		const roleFile, envFile = "roles/fuzz.yaml", "environments/fuzz.yaml"
		l.decodeRole(roleFile, parseYAML(roleFile, data, &l.errs))
		if decl := l.decodeEnv(envFile, parseYAML(envFile, data, &l.errs)); decl != nil {
			l.expand(decl)
		}
		for _, e := range l.errs.list {
			if e.Pos.Line < 1 || e.Pos.Column < 1 || e.Pos.File == "" {
				t.Fatalf("error without a position: %+v", e)
			}
			if e.Msg == "" {
				t.Fatalf("error without a message at %s", e.Pos)
			}
		}
	})
}

// FuzzParseDaemon feeds arbitrary bytes to the daemon configuration
// parser: it must never panic, and a failure must be an ErrorList whose
// every error has a position in the file.
func FuzzParseDaemon(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "daemon", "*.yaml"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseDaemon("driftless.yaml", data)
		if err == nil {
			if cfg == nil || cfg.Listen == "" || cfg.SSH.Parallelism < 1 {
				t.Fatalf("accepted without defaults: %+v", cfg)
			}
			return
		}
		list, ok := err.(ErrorList)
		if !ok {
			t.Fatalf("error is %T, not ErrorList: %v", err, err)
		}
		for _, e := range list {
			if e.Pos.File != "driftless.yaml" || e.Pos.Line < 1 || e.Pos.Column < 1 {
				t.Fatalf("error without a position: %+v", e)
			}
		}
	})
}
