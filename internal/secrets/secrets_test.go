package secrets_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/test/secretstest"
)

// TestDecryptFilesOfTheRealTools decrypts what the sops and age commands
// encrypted, in every format driftless reads, and refuses them to an
// identity that is not a recipient, or to none.
func TestDecryptFilesOfTheRealTools(t *testing.T) {
	dir := t.TempDir()
	key := secretstest.NewKey(t, dir, "key.txt")
	other := secretstest.NewKey(t, dir, "other.txt")
	ids, err := secrets.LoadIdentities([]string{key.File})
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := secrets.LoadIdentities([]string{other.File})
	if err != nil {
		t.Fatal(err)
	}
	yamlVars := []byte("db_password: s3cr3t-yaml-Value\nnested:\n    token: tok-123456\n")
	jsonVars := []byte(`{"api_key": "json-Secret-99"}`)
	tlsKey := []byte("-----BEGIN PRIVATE KEY-----\nbinary-like\x00content\n-----END PRIVATE KEY-----\n")
	cases := []struct {
		name, file, kind string
		data, want       []byte
	}{
		{"sops yaml", "vars.yaml", secrets.SOPS, secretstest.SOPS(t, "vars.yaml", yamlVars, key.Recipient), yamlVars},
		{"sops json", "vars.json", secrets.SOPS, secretstest.SOPS(t, "vars.json", jsonVars, key.Recipient), nil},
		{"sops binary", "tls.key", secrets.SOPS, secretstest.SOPS(t, "tls.key", tlsKey, key.Recipient), tlsKey},
		{"sops two recipients", "tls.key", secrets.SOPS, secretstest.SOPS(t, "tls.key", tlsKey, other.Recipient, key.Recipient), tlsKey},
		{"age binary", "tls.key.age", secrets.Age, secretstest.Age(t, tlsKey, false, key.Recipient), tlsKey},
		{"age armored", "tls.key.age", secrets.Age, secretstest.Age(t, tlsKey, true, key.Recipient), tlsKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := secrets.KindOf(c.file, c.data); got != c.kind {
				t.Fatalf("KindOf = %q, want %q", got, c.kind)
			}
			got, err := ids.Decrypt(c.file, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if c.want != nil && !bytes.Equal(got, c.want) {
				t.Fatalf("decrypted %q, want %q", got, c.want)
			}
			if c.want == nil && !bytes.Contains(got, []byte("json-Secret-99")) {
				t.Fatalf("decrypted %q, want the api_key", got)
			}
			if _, err := wrong.Decrypt(c.file, c.data); c.name != "sops two recipients" && !errors.Is(err, secrets.ErrNoMatch) {
				t.Fatalf("wrong identity: err = %v, want ErrNoMatch", err)
			}
			var none *secrets.Identities
			if _, err := none.Decrypt(c.file, c.data); !errors.Is(err, secrets.ErrNoIdentity) {
				t.Fatalf("no identity: err = %v, want ErrNoIdentity", err)
			}
		})
	}
	t.Run("tampered sops file", func(t *testing.T) {
		enc := secretstest.SOPS(t, "vars.yaml", []byte("a: one-value\nb: two-value\n"), key.Recipient)
		// Swapping two encrypted values keeps each decryptable; only the MAC tells.
		lines := strings.Split(string(enc), "\n")
		lines[0], lines[1] = "a"+lines[1][1:], "b"+lines[0][1:]
		_, err := ids.Decrypt("vars.yaml", []byte(strings.Join(lines, "\n")))
		if err == nil {
			t.Fatal("a tampered SOPS file decrypted")
		}
		if strings.Contains(err.Error(), "one-value") || strings.Contains(err.Error(), "two-value") {
			t.Fatalf("the error quotes the content: %v", err)
		}
	})
	t.Run("plain files pass through", func(t *testing.T) {
		for _, p := range [][]byte{[]byte("a: b\n"), []byte(`{"sops": "not metadata"}`), nil} {
			if k := secrets.KindOf("x.yaml", p); k != secrets.Plain {
				t.Fatalf("KindOf(%q) = %q", p, k)
			}
		}
	})
}

func TestLoadIdentitiesErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, file string }{
		{"missing", filepath.Join(dir, "nope.txt")},
		{"not a key", secretstest.WriteFile(t, dir, "bad.txt", "AGE-SECRET-KEY-1NOTAKEY\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := secrets.LoadIdentities([]string{c.file})
			if err == nil || !strings.Contains(err.Error(), c.file) {
				t.Fatalf("err = %v, want one naming %s", err, c.file)
			}
			if strings.Contains(err.Error(), "NOTAKEY") {
				t.Fatalf("the error quotes the file: %v", err)
			}
		})
	}
}

func TestBoxSealsAndOpensAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.agekey")
	b1, err := secrets.LoadBox(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b1.Seal([]byte("the-clear-text"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("the-clear-text")) {
		t.Fatal("sealed bytes hold the clear text")
	}
	b2, err := secrets.LoadBox(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.Open(sealed)
	if err != nil || string(got) != "the-clear-text" {
		t.Fatalf("Open after reload = %q, %v", got, err)
	}
	other, _ := secrets.NewBox()
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("another box opened the sealed bytes")
	}
}
