package packaging

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// link is one relative Markdown link of a documentation file.
type link struct {
	from   string // the file holding it, relative to the repository
	target string // the path, relative to the repository, "" for the file itself
	anchor string // the fragment after #, if any
}

var mdLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)

// relativeLinks returns the links of a Markdown file that lead inside the
// repository (not http:, https: or mailto:).
func relativeLinks(t *testing.T, file string) []link {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	var out []link
	for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
		dest := m[1]
		if strings.Contains(dest, "://") || strings.HasPrefix(dest, "mailto:") {
			continue
		}
		path, anchor, _ := strings.Cut(dest, "#")
		l := link{from: file, anchor: anchor}
		if path != "" {
			l.target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(file), path)))
		}
		out = append(out, l)
	}
	return out
}

// docFiles are the operator documentation: README.md and docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		files = append(files, filepath.ToSlash(filepath.Join("docs", filepath.Base(d))))
	}
	return files
}

// TestReadmeLinks checks the README leads to the documentation, the
// monitoring files and the unit file.
func TestReadmeLinks(t *testing.T) {
	var targets []string
	for _, l := range relativeLinks(t, "README.md") {
		targets = append(targets, l.target)
	}
	for _, want := range []struct {
		what  string
		match func(string) bool
	}{
		{"docs/", func(s string) bool { return strings.HasPrefix(s, "docs/") }},
		{"monitoring/", func(s string) bool { return s == "monitoring" || strings.HasPrefix(s, "monitoring/") }},
		{"systemd/driftless.service", func(s string) bool { return s == "systemd/driftless.service" }},
		{"docs/getting-started.md", func(s string) bool { return s == "docs/getting-started.md" }},
		{"docs/operations.md", func(s string) bool { return s == "docs/operations.md" }},
	} {
		if !slices.ContainsFunc(targets, want.match) {
			t.Errorf("README.md links nothing in %s (its links: %v)", want.what, targets)
		}
	}
}

// TestDocLinksResolve checks every relative link of the README and of
// docs/*.md leads to a file or folder that exists and, for a Markdown
// file, to a heading that exists.
func TestDocLinksResolve(t *testing.T) {
	for _, file := range docFiles(t) {
		t.Run(file, func(t *testing.T) {
			links := relativeLinks(t, file)
			for _, l := range links {
				target := l.target
				if target == "" {
					target = l.from
				}
				if _, err := os.Stat(filepath.Join(repoRoot, target)); err != nil {
					t.Errorf("%s links %s, which does not exist", l.from, target)
					continue
				}
				if l.anchor != "" && strings.HasSuffix(target, ".md") && !slices.Contains(headingAnchors(t, target), l.anchor) {
					t.Errorf("%s links %s#%s, which has no such heading", l.from, target, l.anchor)
				}
			}
		})
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, blanks as hyphens.
func headingAnchors(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var slug strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				slug.WriteRune(r)
			}
		}
		out = append(out, slug.String())
	}
	return out
}

// invocation is one command line of the documentation running driftless.
type invocation struct {
	file, line string
	command    string
	// words are the words after the command: flags and arguments.
	words []string
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// invocations finds the driftless command lines of a Markdown file: lines
// of code blocks and inline code spans that start with `driftless CMD`
// (or `sudo driftless`, or `go run ./cmd/driftless`).
func invocations(t *testing.T, file string) []invocation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var candidates []string
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			candidates = append(candidates, line)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			candidates = append(candidates, m[1])
		}
	}
	var out []invocation
	for _, c := range candidates {
		if i := strings.Index(c, " #"); i >= 0 {
			c = c[:i] // a shell comment
		}
		words := strings.Fields(c)
		for len(words) > 0 && (words[0] == "sudo" || words[0] == "go" || words[0] == "run") {
			words = words[1:]
		}
		if len(words) < 2 || (words[0] != "driftless" && words[0] != "./cmd/driftless") || strings.HasPrefix(words[1], "-") {
			continue
		}
		inv := invocation{file: file, line: c, command: words[1]}
		for _, w := range words[2:] {
			inv.words = append(inv.words, strings.Trim(w, "[]"))
		}
		out = append(out, inv)
	}
	return out
}

var usageCommand = regexp.MustCompile(`(?m)^  ([a-z]+) `)

// usageFlag matches a flag line of the help: the one-letter name if any,
// the name, then the value's type unless the flag is a boolean.
var usageFlag = regexp.MustCompile(`(?m)^ +(?:-([A-Za-z0-9]), )?--([A-Za-z0-9-]+)(?: ([a-zA-Z]+))? {2,}`)

// helpText runs the binary with args (a -h) and returns what it printed.
func helpText(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out)
}

// cliUsage is what the built binary says of its commands and flags.
type cliUsage struct {
	bin      string
	commands []string
	// flags maps each command to its flags and whether each takes a value.
	flags map[string]map[string]bool
}

func newCLIUsage(t *testing.T, bin string) *cliUsage {
	t.Helper()
	u := &cliUsage{bin: bin, flags: map[string]map[string]bool{}}
	for _, m := range usageCommand.FindAllStringSubmatch(helpText(t, bin, "-h"), -1) {
		u.commands = append(u.commands, m[1])
	}
	if !slices.Contains(u.commands, "serve") {
		t.Fatalf("driftless -h lists no serve command; read %v", u.commands)
	}
	return u
}

// check fails the test when the invocation's command or one of its flags
// does not exist, or when a flag comes after an argument.
func (u *cliUsage) check(t *testing.T, inv invocation) {
	t.Helper()
	if !slices.Contains(u.commands, inv.command) {
		t.Errorf("%s: `%s`: driftless has no command %q (it has %v)", inv.file, inv.line, inv.command, u.commands)
		return
	}
	if _, ok := u.flags[inv.command]; !ok {
		u.flags[inv.command] = map[string]bool{}
		for _, m := range usageFlag.FindAllStringSubmatch(helpText(t, u.bin, inv.command, "-h"), -1) {
			u.flags[inv.command][m[2]] = m[3] != ""
			if m[1] != "" {
				u.flags[inv.command][m[1]] = m[3] != ""
			}
		}
	}
	checkWords(t, inv, u.flags[inv.command])
}

// testDocCommandsExist checks every `driftless CMD -flag` of the README
// and docs/*.md against the built binary's own usage: the command exists
// and it has each flag.
func testDocCommandsExist(t *testing.T, bin string) {
	u := newCLIUsage(t, bin)
	checked := 0
	for _, file := range docFiles(t) {
		for _, inv := range invocations(t, file) {
			checked++
			u.check(t, inv)
		}
	}
	if checked < 10 {
		t.Errorf("found only %d driftless command lines in the documentation: the scan is broken", checked)
	}
}

// testShippedCommandLines checks the command lines the image and the units
// run: the Dockerfile's CMD and each unit's ExecStart.
func testShippedCommandLines(t *testing.T, bin string) {
	u := newCLIUsage(t, bin)
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var cmd []string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "CMD "); ok {
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("the Dockerfile's CMD is not a JSON array: %v", err)
			}
		}
	}
	if len(cmd) == 0 {
		t.Fatal("the Dockerfile has no CMD")
	}
	u.check(t, invocation{file: "Dockerfile", line: strings.Join(cmd, " "), command: cmd[0], words: cmd[1:]})

	for _, path := range []string{unitPath, agentUnitPath} {
		file := "systemd/" + filepath.Base(path)
		execStart := unitKeys(t, path)["Service"]["ExecStart"]
		if len(execStart) != 1 {
			t.Fatalf("%s has ExecStart=%v, want one", file, execStart)
		}
		words := strings.Fields(execStart[0])
		if len(words) < 2 || filepath.Base(words[0]) != "driftless" {
			t.Fatalf("%s's ExecStart=%s does not run driftless", file, execStart[0])
		}
		u.check(t, invocation{file: file, line: execStart[0], command: words[1], words: words[2:]})
	}
}

// checkWords checks each flag of an invocation exists under the spelling
// the help gives: two dashes for a name, one for a single letter.
func checkWords(t *testing.T, inv invocation, flags map[string]bool) {
	t.Helper()
	for i := 0; i < len(inv.words); i++ {
		w := inv.words[i]
		if !strings.HasPrefix(w, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		takesValue, ok := flags[name]
		dashes := "--"
		if len(name) == 1 {
			dashes = "-"
		}
		switch {
		case !ok:
			t.Errorf("%s: `%s`: driftless %s has no flag %s%s", inv.file, inv.line, inv.command, dashes, name)
		case !strings.HasPrefix(w, dashes) || strings.HasPrefix(w, dashes+"-"):
			t.Errorf("%s: `%s`: %s is spelled %s%s in the help", inv.file, inv.line, w, dashes, name)
		}
		if takesValue && !hasValue {
			i++ // the flag's value
		}
	}
}
