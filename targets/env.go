package targets

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/driftless/driftless/config"
)

// EnvDriver manages a KEY=VALUE file such as /etc/environment or a systemd
// EnvironmentFile. It sets the declared keys and keeps every other line
// (undeclared keys, comments, blank lines) where it was, unless the spec is
// Exclusive, in which case undeclared keys are removed. The file is written
// atomically with the transport's WriteFile.
//
// Its diff names the keys that change but never their values: environment
// files often hold secrets, and diffs end up in logs and pull request
// comments.
type EnvDriver struct{}

var (
	_ Driver   = (*EnvDriver)(nil)
	_ Contents = (*EnvDriver)(nil)
	_ Writer   = (*EnvDriver)(nil)
)

// Desired implements Contents: the file applying would write, the
// observed one merged with the declared variables.
func (*EnvDriver) Desired(r config.Resource, observed State) ([]byte, bool) {
	spec, err := specOf(r, validateEnv)
	if err != nil {
		return nil, false
	}
	merged, _ := mergeEnv(string(observed.Content), spec.Vars, spec.Exclusive)
	return []byte(merged), true
}

// Kind returns "env".
func (*EnvDriver) Kind() string { return "env" }

// EnvSpec is the declared spec of a KEY=VALUE file (/etc/environment, a
// systemd EnvironmentFile). With Exclusive, keys not declared are removed.
// A value may be a template rendered per host ("{{ .Vars.db_password }}",
// config.ValuesSpec).
type EnvSpec struct {
	Vars      map[string]string `yaml:"vars" json:"vars"`
	Exclusive bool              `yaml:"exclusive" json:"exclusive,omitempty"`
	Mode      string            `yaml:"mode" json:"mode,omitempty"`
	// Secret marks the values as secret, as FileSpec.Secret does; the
	// loader sets it when a value is rendered with a decrypted variable.
	Secret bool `yaml:"secret" json:"secret,omitempty"`
}

var _ config.ValuesSpec = (*EnvSpec)(nil)

// IsSecret implements config.SecretSpec.
func (s *EnvSpec) IsSecret() bool { return s.Secret }

// MarkSecret implements config.SecretSpec.
func (s *EnvSpec) MarkSecret() { s.Secret = true }

// Values implements config.ValuesSpec.
func (s *EnvSpec) Values() map[string]string { return s.Vars }

// SetValues implements config.ValuesSpec.
func (s *EnvSpec) SetValues(values map[string]string) { s.Vars = values }

// NewSpec returns an empty env spec.
func (*EnvDriver) NewSpec() any { return &EnvSpec{} }

// Validate is the env kind's one validation. Its messages never quote a
// value, which may be secret.
func (*EnvDriver) Validate(name string, spec any) []config.Problem {
	return validateAny(name, spec, validateEnv)
}

func validateEnv(name string, s *EnvSpec) []config.Problem {
	var p problems
	p.path("", "env file path", name)
	p.mode(s.Mode)
	for _, k := range slices.Sorted(maps.Keys(s.Vars)) {
		if !validEnvKey(k) {
			p.add("vars", "vars: %q is not a valid variable name", k)
		}
		if strings.ContainsAny(s.Vars[k], "\n\r\x00") {
			p.add("vars", "vars: the value of %s holds a newline or NUL, which a KEY=VALUE file cannot carry", k)
		}
	}
	return p
}

// Parse reads the env file's observation, a file's.
func (*EnvDriver) Parse(_ config.Resource, out []byte) (State, error) {
	return parseFileState(out)
}

// query describes an env file for native observation: its path.
func (*EnvDriver) query(r config.Resource, root string) (Query, error) {
	if _, err := specOf(r, validateEnv); err != nil {
		return Query{Kind: r.Kind}, err
	}
	return pathQuery(Query{Kind: r.Kind}, r, root)
}

// observeNative observes an env file as a file without a declared hash.
func (*EnvDriver) observeNative(o *observation, q Query) ([]byte, error) {
	return (*FileDriver)(nil).observeNative(o, q)
}

// Diff lists the keys added ("+ KEY"), changed ("~ KEY") and removed
// ("- KEY"), and a mode change.
func (*EnvDriver) Diff(r config.Resource, observed State) Change {
	c := Change{ID: r.ID(), Kind: r.Kind, Before: observed, Action: NoChange}
	spec, err := specOf(r, validateEnv)
	if err != nil {
		c.Action, c.Diff = Update, err.Error()
		return c
	}
	lines := fileShapeDiffs(spec.Mode, observed)
	_, keys := mergeEnv(string(observed.Content), spec.Vars, spec.Exclusive)
	lines = append(lines, keys...)
	c.Action = action(observed.Present, lines)
	c.Diff = strings.Join(lines, "\n")
	return c
}

// Apply writes the merged file.
func (d *EnvDriver) Apply(ctx context.Context, t Transport, r config.Resource, observed State) error {
	w, err := d.plan(r, observed)
	if err != nil {
		return err
	}
	return writeOne(ctx, t, r, w)
}

// ApplyNative is Apply on the host: the merged file written in process.
func (d *EnvDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	w, err := d.plan(r, observed)
	if err != nil {
		return err
	}
	return h.writeOne(ctx, r, w)
}

// RestoreNative is Restore on the host.
func (*EnvDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	return restoreFileNative(ctx, h, r, snapshot)
}

// Write implements Writer: the write of Apply.
func (d *EnvDriver) Write(r config.Resource, observed State) (FileWrite, bool) {
	w, err := d.plan(r, observed)
	return w, err == nil
}

// plan returns the write of the merged file.
func (*EnvDriver) plan(r config.Resource, observed State) (FileWrite, error) {
	spec, err := specOf(r, validateEnv)
	if err != nil {
		return FileWrite{}, fmt.Errorf("apply: %w", err)
	}
	if observed.Present && observed.Fields["type"] != "file" {
		return FileWrite{}, fmt.Errorf("apply %s: a %s is there, not a file", r.ID(), observed.Fields["type"])
	}
	content, _ := mergeEnv(string(observed.Content), spec.Vars, spec.Exclusive)
	owner, group := keptOwner("", "", observed)
	return ownedWrite(r, []byte(content), wantMode(spec.Mode, observed, createMode(r)), owner, group)
}

// Restore puts back the snapshot's bytes, mode and owner, or removes the
// file when it did not exist before.
func (*EnvDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	return restoreFile(ctx, t, r, snapshot)
}

// RestoreWrite returns the write of Restore, unless it removes the file.
func (*EnvDriver) RestoreWrite(r config.Resource, snapshot State) (FileWrite, bool) {
	w, remove, err := restorePlan(r, snapshot)
	return w, err == nil && !remove
}

// mergeEnv returns the content with vars set and, when exclusive, other
// keys removed, and the list of changed keys in "+ KEY", "~ KEY", "- KEY"
// form. Every line that is not an assignment of a declared key is kept
// byte for byte, so a file that already holds the declared values is
// returned unchanged. A key set twice gets the declared value in both
// places, so no later line can override it.
func mergeEnv(old string, vars map[string]string, exclusive bool) (string, []string) {
	var b strings.Builder
	set := make(map[string]bool, len(vars))
	changed := map[string]byte{}
	for _, line := range splitLines(old) {
		key, val, ok := parseEnvLine(line)
		if !ok {
			b.WriteString(line)
			continue
		}
		want, declared := vars[key]
		switch {
		case !declared && exclusive:
			changed[key] = '-'
		case !declared || want == val:
			b.WriteString(line)
		default:
			changed[key] = '~'
			b.WriteString(key + "=" + quoteEnv(want) + "\n")
		}
		if declared {
			set[key] = true
		}
	}
	for _, k := range sortedKeys(vars) {
		if !set[k] {
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteString("\n")
			}
			changed[k] = '+'
			b.WriteString(k + "=" + quoteEnv(vars[k]) + "\n")
		}
	}
	var out []string
	for _, k := range sortedKeys(changed) {
		out = append(out, string(changed[k])+" "+k)
	}
	return b.String(), out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseEnvLine reads "KEY=VALUE", "export KEY=VALUE", with the value bare,
// in double quotes (backslash escapes) or in single quotes (literal). It
// reports false for comments, blank lines and anything else, which are
// kept as they are.
func parseEnvLine(line string) (key, val string, ok bool) {
	s := strings.TrimSpace(line)
	if s == "" || s[0] == '#' {
		return "", "", false
	}
	s = strings.TrimPrefix(s, "export ")
	key, raw, found := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !found || !validEnvKey(key) {
		return "", "", false
	}
	return key, unquoteEnv(strings.TrimSpace(raw)), true
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func unquoteEnv(raw string) string {
	if len(raw) >= 2 && raw[0] == '\'' && raw[len(raw)-1] == '\'' {
		return raw[1 : len(raw)-1]
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return raw
	}
	var b strings.Builder
	in := raw[1 : len(raw)-1]
	for i := 0; i < len(in); i++ {
		if in[i] == '\\' && i+1 < len(in) {
			i++
		}
		b.WriteByte(in[i])
	}
	return b.String()
}

// quoteEnv writes a value bare when it is made only of characters that
// mean nothing to a shell, systemd or pam_env, and in double quotes with
// backslash escapes otherwise.
func quoteEnv(v string) string {
	bare := v != ""
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./:@%+,-=", c)) {
			bare = false
			break
		}
	}
	if bare {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}
