package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/driftless/driftless/internal/secrets"
	"github.com/driftless/driftless/targets"
)

// storeKeyFile is the daemon's own age identity, beside the store file:
// what the journal keeps of a secret resource is encrypted to it.
const storeKeyFile = "store.agekey"

// loadStoreBox reads (or creates) the age identity beside the store file.
func loadStoreBox(storePath string) (*secrets.Box, error) {
	return secrets.LoadBox(filepath.Join(filepath.Dir(storePath), storeKeyFile))
}

// sealedPrefix starts every sealed value (an age file).
var sealedPrefix = []byte("age-encryption.org/v1")

// encodeSealed encodes a journal entry; the entry of a secret resource
// (its declared spec carries the new content, its snapshot the old) is
// encrypted whole to the store's own recipient, with only its host,
// identity and flags in clear. bbolt does not zero freed pages, so the
// clear text is never written to the file at all.
func encodeSealed(box *secrets.Box, e JournalEntry) ([]byte, error) {
	clear, err := encodeEntry(e)
	if err != nil || !e.Resource.IsSecret() {
		return clear, err
	}
	sealed, err := box.Seal(clear)
	if err != nil {
		return nil, fmt.Errorf("seal journal entry of %s: %w", e.Resource.ID(), err)
	}
	return json.Marshal(storedEntry{
		JournalEntry: JournalEntry{Seq: e.Seq, Host: e.Host, Applied: e.Applied},
		Res:          targets.ResourceJSON{Kind: e.Resource.Kind, Name: e.Resource.Name},
		Sealed:       sealed,
	})
}

// decodeSealed decodes what encodeSealed encoded. The flags of the clear
// envelope win: FinishEntries marks an entry applied there.
func decodeSealed(box *secrets.Box, data []byte) (JournalEntry, error) {
	var env storedEntry
	if err := json.Unmarshal(data, &env); err != nil || env.Sealed == nil {
		return decodeEntry(data)
	}
	clear, err := box.Open(env.Sealed)
	if err != nil {
		return JournalEntry{}, fmt.Errorf("open journal entry of %s:%s: %w", env.Res.Kind, env.Res.Name, err)
	}
	e, err := decodeEntry(clear)
	if err != nil {
		return JournalEntry{}, err
	}
	e.Seq, e.Applied = env.Seq, env.Applied
	return e, nil
}

// encodeFirst encodes a first-managed state, sealed for a secret resource.
func encodeFirst(box *secrets.Box, e JournalEntry) ([]byte, error) {
	snap, err := json.Marshal(e.Snapshot)
	if err != nil || !e.Resource.IsSecret() {
		return snap, err
	}
	return box.Seal(snap)
}

// decodeFirst decodes what encodeFirst encoded.
func decodeFirst(box *secrets.Box, v []byte, st *targets.State) error {
	if bytes.HasPrefix(v, sealedPrefix) {
		clear, err := box.Open(v)
		if err != nil {
			return err
		}
		v = clear
	}
	return json.Unmarshal(v, st)
}
