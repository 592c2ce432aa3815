package config_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// update rewrites the expected outputs of the fixtures from what the loader
// produces now; review the diff before committing it.
var update = flag.Bool("update", false, "rewrite testdata expected files")

// fixtureRoot is the relative local root given to good fixtures, so that
// their expected output does not depend on the machine.
const fixtureRoot = "sandbox"

// TestGoodRevisions loads every testdata/good/<case> and compares the whole
// loaded revision, as JSON, with the case's expected.json.
func TestGoodRevisions(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "good", "*"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no good fixtures: %v", err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: fixtureRoot})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			got, err := json.MarshalIndent(rev, "", "  ")
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			compareGolden(t, filepath.Join(dir, "expected.json"), string(got)+"\n")
		})
	}
}

// TestBadRevisions loads every testdata/bad/<case> and compares the error
// list with the case's expected.txt, exactly.
func TestBadRevisions(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "bad", "*"))
	if err != nil || len(cases) < 15 {
		t.Fatalf("want at least 15 bad fixtures, found %d (%v)", len(cases), err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rev, err := config.LoadRevision(dir, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds()})
			if err == nil {
				t.Fatalf("loaded without error: %d environments", len(rev.Environments))
			}
			var list config.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			for _, e := range list {
				if e.Pos.File == "" || filepath.IsAbs(e.Pos.File) {
					t.Errorf("error without a relative file: %+v", e)
				}
			}
			compareGolden(t, filepath.Join(dir, "expected.txt"), err.Error()+"\n")
		})
	}
}

// TestDaemonFixtures loads testdata/daemon/*.good.yaml (each must load) and
// *.bad.yaml (each must fail with the sibling .txt's exact errors).
func TestDaemonFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "daemon", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no daemon fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			// ParseDaemon, not LoadDaemon: the goldens keep relative paths
			// as written (LoadDaemon's resolution has its own test).
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.ParseDaemon(file, data)
			switch {
			case strings.HasSuffix(file, ".good.yaml"):
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				got, _ := json.MarshalIndent(cfg, "", "  ")
				compareGolden(t, strings.TrimSuffix(file, ".yaml")+".json", string(got)+"\n")
			case strings.HasSuffix(file, ".bad.yaml"):
				if err == nil {
					t.Fatalf("loaded without error")
				}
				compareGolden(t, strings.TrimSuffix(file, ".yaml")+".txt", err.Error()+"\n")
			default:
				t.Fatalf("fixture name must end in .good.yaml or .bad.yaml")
			}
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("update %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read expected output: %v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\n--- got:\n%s--- want:\n%s", path, got, want)
	}
}
