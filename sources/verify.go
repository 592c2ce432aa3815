package sources

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// readKeyring reads and checks a file of armored OpenPGP public keys. The
// armored text is kept as is: go-git's Commit.Verify takes it that way.
func readKeyring(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read signing keys: %w", err)
	}
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("parse signing keys %s: %w", path, err)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("signing keys %s: no key in the file", path)
	}
	return string(b), nil
}

// b2f is 1 for true, 0 for false: a gauge's value.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ErrUnsigned is returned for a commit without a signature when signing
// keys are configured.
var ErrUnsigned = errors.New("commit is not signed")

// verifyCommit checks that commit is signed by a key of keyring.
func verifyCommit(commit *object.Commit, keyring string) error {
	if commit.PGPSignature == "" {
		return ErrUnsigned
	}
	if _, err := commit.Verify(keyring); err != nil {
		return fmt.Errorf("signature of commit %s: %w", commit.Hash, err)
	}
	return nil
}

// accept checks whether a commit may become a revision: always when no
// signing keys are configured, else only when it verifies. It returns nil
// when it may, else why not; fresh is true the first time a commit is
// refused, which is logged and counted once, not on every poll.
func (g *Git) accept(commit *object.Commit) (refused error, fresh bool) {
	if g.keyring == "" {
		return nil, false
	}
	err := verifyCommit(commit, g.keyring)
	if err == nil {
		return nil, false
	}
	sha := commit.Hash.String()
	if g.refused[sha] {
		return err, false
	}
	g.refused[sha] = true
	g.m.verifyFailures.WithLabelValues(g.name).Inc()
	g.log.Error().Err(err).Str("revision", sha).
		Msg("commit refused: not signed by a trusted key; keeping the last good revision")
	return err, true
}
