package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/internal/secrets"
)

// readSecretFile reads a repository file like readRepoFile and decrypts
// it when it is a SOPS or age file, saying whether it was encrypted.
// Without identities an encrypted file is an error at the line that uses
// it, unless the load skips decryption (validate without identities).
func (l *loader) readSecretFile(d *decoder, at *yaml.Node, key, rel string) ([]byte, bool, bool) {
	data, ok := l.readRepoFile(d, at, key, rel)
	if !ok {
		return nil, false, false
	}
	kind := secrets.KindOf(rel, data)
	if kind == secrets.Plain {
		return data, false, true
	}
	if l.opts.SkipDecrypt && l.opts.Identities.Len() == 0 {
		l.undecrypted = append(l.undecrypted, d.pos(at))
		return nil, true, true
	}
	clear, err := l.opts.Identities.Decrypt(rel, data)
	if err != nil {
		d.errorf(at, "%s: %q is %s-encrypted and cannot be decrypted: %s", key, rel, encName(kind), errText(err))
		return nil, true, false
	}
	return clear, true, true
}

func encName(kind string) string {
	if kind == secrets.SOPS {
		return "SOPS"
	}
	return kind
}

// errText is err's message, or ErrNoIdentity's and ErrNoMatch's own.
func errText(err error) string {
	for _, known := range []error{secrets.ErrNoIdentity, secrets.ErrNoMatch} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	return err.Error()
}

// loadVarsFiles reads a host's vars_files, in order, into its variables:
// a later file overrides an earlier one, and the host's own vars override
// them all. The string values of encrypted files become the host's
// SecretValues.
func (l *loader) loadVarsFiles(d *decoder, hd *hostDecl) {
	h := hd.host
	if len(h.VarsFiles) == 0 {
		return
	}
	at := hd.keys["vars_files"]
	if at == nil {
		at = &yaml.Node{Line: h.Pos.Line, Column: h.Pos.Column}
	}
	merged := map[string]any{}
	for _, rel := range h.VarsFiles {
		data, encrypted, ok := l.readSecretFile(d, at, "vars_files", rel)
		if data == nil {
			// Not decrypted (validate without identities) or failed:
			// templates are not rendered without the variables.
			l.varsUnknown[h] = true
		}
		if !ok || data == nil {
			continue
		}
		var vars map[string]any
		if err := yaml.Unmarshal(data, &vars); err != nil {
			// The parser's message may quote the content, which may be secret.
			d.errorf(at, "vars_files: %q is not a YAML or JSON mapping of variables", rel)
			continue
		}
		if encrypted {
			delete(vars, "sops")
			h.SecretValues = appendStrings(h.SecretValues, vars)
		}
		for k, v := range vars {
			merged[k] = stringKeys(v)
		}
	}
	for k, v := range h.Vars {
		merged[k] = v
	}
	h.Vars = merged
	sort.Strings(h.SecretValues)
	h.SecretValues = compactStrings(h.SecretValues)
}

// appendStrings adds every scalar leaf of v, written as text, to out.
func appendStrings(out []string, v any) []string {
	switch x := v.(type) {
	case map[string]any:
		for _, val := range x {
			out = appendStrings(out, val)
		}
	case map[any]any:
		for _, val := range x {
			out = appendStrings(out, val)
		}
	case []any:
		for _, val := range x {
			out = appendStrings(out, val)
		}
	case nil, bool:
	default:
		if s := fmt.Sprint(x); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// containsAny reports whether s holds one of the values.
func containsAny(s string, values []string) bool {
	for _, v := range values {
		if v != "" && strings.Contains(s, v) {
			return true
		}
	}
	return false
}
