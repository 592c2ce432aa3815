package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"filippo.io/age"
)

// Box encrypts what the daemon must keep of a secret (a journal snapshot
// of a secret file, its declared spec) to the daemon's own age recipient,
// so that the state store never holds it in clear, not even in a freed
// page.
type Box struct {
	id *age.X25519Identity
}

// LoadBox reads the daemon's own age identity from path, creating it
// (mode 0600) the first time.
func LoadBox(path string) (*Box, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("create the state store's age identity: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create the state store's age identity: %w", err)
		}
		_, err = io.WriteString(f, "# driftless state store key: journal snapshots of secrets are encrypted to it\n"+id.String()+"\n")
		if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("write the state store's age identity %s: %w", path, err)
		}
		return &Box{id: id}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state store's age identity: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "AGE-SECRET-KEY-1") {
			id, err := age.ParseX25519Identity(line)
			if err != nil {
				return nil, fmt.Errorf("read the state store's age identity %s: not a valid age identity", path)
			}
			return &Box{id: id}, nil
		}
	}
	return nil, fmt.Errorf("read the state store's age identity %s: no AGE-SECRET-KEY-1 line", path)
}

// NewBox is a Box with a fresh identity that lives only in memory (tests,
// and one-shot runs whose store is thrown away).
func NewBox() (*Box, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("create an age identity: %w", err)
	}
	return &Box{id: id}, nil
}

// Seal encrypts plain to the box's recipient.
func (b *Box) Seal(plain []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, b.id.Recipient())
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out.Bytes(), nil
}

// Open decrypts what Seal encrypted.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), b.id)
	if err != nil {
		return nil, fmt.Errorf("open sealed state: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("open sealed state: %w", err)
	}
	return out, nil
}
