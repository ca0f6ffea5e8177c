package anonymize

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/usagemeter/usagemeter/internal/secretfile"
)

// SecretSize is the size of a new anonymisation secret, and the minimum
// accepted by [New] in hashed mode.
const SecretSize = 32

// NewSecret returns SecretSize random bytes from crypto/rand.
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating anonymisation secret: %w", err)
	}
	return b, nil
}

// LoadOrCreateSecret returns the secret kept in the file at path. When the
// file does not exist, a new secret is generated and written there as hex
// text with mode 0600 (the parent directory is created with mode 0700 if
// needed). The file is created atomically and never overwritten: an existing
// file that does not hold a valid secret is an error naming the file, because
// replacing it would silently change every hash in future reports.
//
// Accepted file contents: hex text (surrounding white space ignored) of at
// least SecretSize bytes, or exactly SecretSize raw bytes.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return parseSecret(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading anonymisation secret: %w", err)
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	text := hex.EncodeToString(secret) + "\n"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating anonymisation secret: %w", err)
	}
	if err := secretfile.CreateExclusive(path, []byte(text)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else created it between our read and our link: use theirs.
			return LoadOrCreateSecret(path)
		}
		return nil, fmt.Errorf("creating anonymisation secret %s: %w", path, err)
	}
	return secret, nil
}

func parseSecret(path string, b []byte) ([]byte, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && isHex(t) {
		if len(t)%2 != 0 {
			return nil, fmt.Errorf("anonymisation secret %s: odd number of hex digits (%d)", path, len(t))
		}
		secret := make([]byte, len(t)/2)
		if _, err := hex.Decode(secret, t); err != nil {
			return nil, fmt.Errorf("anonymisation secret %s: %w", path, err)
		}
		if len(secret) < SecretSize {
			return nil, fmt.Errorf("anonymisation secret %s is %d bytes, want at least %d", path, len(secret), SecretSize)
		}
		return secret, nil
	}
	if len(b) == SecretSize {
		return b, nil
	}
	return nil, fmt.Errorf("anonymisation secret %s is corrupt: %d bytes, neither hex text nor %d raw bytes", path, len(b), SecretSize)
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
