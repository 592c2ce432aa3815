// Package secrets decrypts the secrets a declared repository carries:
// files encrypted with SOPS to age recipients (YAML, JSON, dotenv or any
// other file, which SOPS keeps as its binary format) and files encrypted
// with age itself. It holds the daemon's age identities, read from the
// files driftless.yaml names, and never reads SOPS's environment variables
// or the user's key folder, so what decrypts is exactly what is configured.
package secrets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	sopsconfig "github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/stores/dotenv"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
)

// Kinds of encryption a repository file may carry.
const (
	Plain = ""
	SOPS  = "sops"
	Age   = "age"
)

// ErrNoIdentity is returned when a file is encrypted and no age identity
// is configured (secrets.age_key_files in driftless.yaml).
var ErrNoIdentity = errors.New("the daemon has no age identity to decrypt it: set secrets.age_key_files in driftless.yaml")

// ErrNoMatch is returned when none of the configured identities is a
// recipient of the file.
var ErrNoMatch = errors.New("none of the configured age identities can decrypt it")

// Identities are the age identities that decrypt repository secrets. A nil
// *Identities holds none: every encrypted file fails with ErrNoIdentity.
type Identities struct {
	ids []age.Identity
}

// LoadIdentities reads age identity files (the format of age-keygen: one
// AGE-SECRET-KEY-1... line per identity, comments allowed). Errors name the
// file, never its content.
func LoadIdentities(files []string) (*Identities, error) {
	out := &Identities{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read age identities from %s: %w", f, err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read age identities from %s: the file holds no valid age identity (AGE-SECRET-KEY-1... lines, as age-keygen writes)", f)
		}
		out.ids = append(out.ids, ids...)
	}
	return out, nil
}

// Len is the number of identities held.
func (i *Identities) Len() int {
	if i == nil {
		return 0
	}
	return len(i.ids)
}

// ageHeader starts every binary age file; armored ones start with armor.Header.
const ageHeader = "age-encryption.org/v1\n"

// KindOf says how a repository file is encrypted: Age (an age file, binary
// or armored), SOPS (a document with SOPS's metadata at its top level:
// YAML, JSON, dotenv, or SOPS's binary format), or Plain.
func KindOf(name string, data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte(ageHeader)), bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header)):
		return Age
	case isSOPS(name, data):
		return SOPS
	}
	return Plain
}

// isSOPS looks for SOPS's metadata: a top-level "sops" mapping with a
// "mac", or, in dotenv files, "sops_mac=" lines.
func isSOPS(name string, data []byte) bool {
	if formats.FormatForPath(name) == formats.Dotenv {
		return bytes.Contains(data, []byte("\nsops_mac=")) || bytes.HasPrefix(data, []byte("sops_mac="))
	}
	if !bytes.Contains(data, []byte("sops")) || !bytes.Contains(data, []byte("mac")) {
		return false
	}
	var doc struct {
		SOPS *struct {
			MAC string `yaml:"mac"`
		} `yaml:"sops"`
	}
	// JSON is YAML, so one parser reads both; a file that parses as
	// neither is no SOPS file.
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return false
	}
	return doc.SOPS != nil && doc.SOPS.MAC != ""
}

// Decrypt returns the clear content of an encrypted repository file, or
// data itself when it is not encrypted. name (the file's path) decides
// the SOPS format as the sops command does: .yaml/.yml, .json, .env, and
// any other name SOPS's binary format, whose clear content is the
// original file. Errors never quote the content.
func (i *Identities) Decrypt(name string, data []byte) ([]byte, error) {
	switch KindOf(name, data) {
	case Age:
		return i.decryptAge(data)
	case SOPS:
		return i.decryptSOPS(name, data)
	}
	return data, nil
}

func (i *Identities) decryptAge(data []byte) ([]byte, error) {
	if i.Len() == 0 {
		return nil, ErrNoIdentity
	}
	var in io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte(ageHeader)) {
		in = armor.NewReader(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n")))
	}
	r, err := age.Decrypt(in, i.ids...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, ErrNoMatch
		}
		return nil, fmt.Errorf("decrypt age file: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decrypt age file: %w", err)
	}
	return out, nil
}

// sopsStore is what the SOPS stores of every format can do.
type sopsStore interface {
	LoadEncryptedFile(in []byte) (sops.Tree, error)
	EmitPlainFile(in sops.TreeBranches) ([]byte, error)
}

func storeFor(name string) sopsStore {
	switch formats.FormatForPath(name) {
	case formats.Yaml:
		return sopsyaml.NewStore(&sopsconfig.YAMLStoreConfig{})
	case formats.Json:
		return sopsjson.NewStore(&sopsconfig.JSONStoreConfig{})
	case formats.Dotenv:
		return dotenv.NewStore(&sopsconfig.DotenvStoreConfig{})
	}
	return sopsjson.NewBinaryStore(&sopsconfig.JSONBinaryStoreConfig{})
}

// decryptSOPS does what SOPS's decrypt package does, with the data key
// recovered by this package's identities rather than by whatever keys the
// process's environment names, and checks the file's MAC.
func (i *Identities) decryptSOPS(name string, data []byte) ([]byte, error) {
	if i.Len() == 0 {
		return nil, ErrNoIdentity
	}
	store := storeFor(name)
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("read SOPS file: %w", err)
	}
	svc := &keyService{ids: i.ids}
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{svc}, []string{"age"})
	if err != nil {
		if svc.ageKeys == 0 {
			return nil, errors.New("the SOPS file has no age recipient (only age is supported)")
		}
		return nil, ErrNoMatch
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("decrypt SOPS file: %w", err)
	}
	want, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("decrypt SOPS file's MAC: %w", err)
	}
	if want != mac {
		return nil, errors.New("the SOPS file's MAC does not match its content: it was changed without sops")
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("write decrypted SOPS file: %w", err)
	}
	return out, nil
}

// keyService decrypts SOPS data keys encrypted to age recipients with the
// configured identities, in process; every other kind of key is refused.
type keyService struct {
	ids     []age.Identity
	ageKeys int
}

var _ keyservice.KeyServiceClient = (*keyService)(nil)

func (k *keyService) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("driftless never encrypts SOPS data keys")
}

func (k *keyService) Decrypt(_ context.Context, req *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	if req.GetKey().GetAgeKey() == nil {
		return nil, errors.New("not an age key")
	}
	k.ageKeys++
	r, err := age.Decrypt(armor.NewReader(bufio.NewReader(strings.NewReader(string(req.GetCiphertext())))), k.ids...)
	if err != nil {
		return nil, err
	}
	key, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: key}, nil
}
