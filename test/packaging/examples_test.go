package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	// label is the `path` of a "`path`:" line right before the block, if any.
	label string
	lang  string
	body  string
}

var blockLabel = regexp.MustCompile("^`([^`]+)`:$")

// codeBlocks returns the fenced code blocks of a Markdown file.
func codeBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []docBlock
	var cur *docBlock
	label := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &docBlock{label: label, lang: strings.TrimPrefix(line, "```")}
		case cur != nil && strings.HasPrefix(line, "```"):
			out = append(out, *cur)
			cur, label = nil, ""
		case cur != nil:
			cur.body += line + "\n"
		case strings.TrimSpace(line) == "":
		default:
			label = ""
			if m := blockLabel.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				label = m[1]
			}
		}
	}
	return out
}

// TestDocExamplesLoad checks the examples of getting-started.md and
// operations.md are accepted as written: the repository files shown
// (environments/, roles/, files/) load as a revision, and every
// driftless.yaml shown, whole or in part, parses as the daemon's
// configuration.
func TestDocExamplesLoad(t *testing.T) {
	repo := t.TempDir()
	repoFiles, daemonConfigs := 0, 0
	for _, file := range []string{"docs/getting-started.md", "docs/operations.md"} {
		for i, b := range codeBlocks(t, file) {
			where := fmt.Sprintf("%s block %d", file, i+1)
			if b.label != "" {
				where = file + " " + b.label
			}
			switch first := firstKey(b.body); {
			case strings.HasPrefix(b.label, "environments/") || strings.HasPrefix(b.label, "roles/") || strings.HasPrefix(b.label, "files/"):
				p := filepath.Join(repo, filepath.FromSlash(b.label))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(b.body), 0o644); err != nil {
					t.Fatal(err)
				}
				repoFiles++
			case b.lang == "yaml" && (first == "listen" || first == "sources" || first == "state_dir"):
				daemonConfigs++
				if _, err := config.ParseDaemon(where, []byte(b.body)); err != nil {
					t.Errorf("%s does not parse as driftless.yaml:\n%v", where, err)
				}
			}
		}
	}
	if repoFiles < 3 || daemonConfigs < 2 {
		t.Fatalf("found %d repository files and %d driftless.yaml examples in the docs: the scan is broken", repoFiles, daemonConfigs)
	}
	rev, err := config.LoadRevision(repo, config.LoadOptions{Kinds: targets.Kinds(), Checks: verify.Kinds(), LocalRoot: t.TempDir()})
	if err != nil {
		t.Fatalf("the repository of getting-started.md does not load:\n%v", err)
	}
	if len(rev.Environments) == 0 {
		t.Error("the repository of getting-started.md declares no environment")
	}
}

// firstKey returns the first top-level YAML key of a block, skipping
// comments.
func firstKey(body string) string {
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") {
			continue
		}
		k, _, _ := strings.Cut(line, ":")
		return k
	}
	return ""
}
