// Package seal encrypts product credentials at rest with AES-256-GCM under a
// key file kept in data_dir (created at first start, mode 0600). The key file
// is never overwritten: a missing or corrupt key while sealed credentials
// exist is an error the daemon refuses to start on.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/usagemeter/usagemeter/internal/secretfile"
)

// KeyFileName is the key file's name inside data_dir.
const KeyFileName = "credentials.key"

const keyLen = 32

// version byte in front of every sealed value, for a future key rotation.
const version byte = 1

// ErrOpen is returned when a value cannot be unsealed (wrong key, damaged data).
var ErrOpen = errors.New("cannot decrypt sealed credentials: wrong or replaced key file, or damaged data")

// Box seals and opens values.
type Box struct {
	aead cipher.AEAD
	path string
}

// Path is the key file the box was loaded from ("" for NewBox).
func (b *Box) Path() string { return b.path }

// NewBox makes a Box from a raw 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != keyLen {
		return nil, fmt.Errorf("credentials key must be %d bytes, got %d", keyLen, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadKey reads an existing key file. It never creates one.
func LoadKey(path string) (*Box, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading credentials key %s: %w", path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != keyLen {
		return nil, fmt.Errorf("credentials key %s is corrupt (want %d hex-encoded bytes); restore it from backup: it is not replaced automatically because the stored credentials can only be read with it", path, keyLen)
	}
	box, err := NewBox(key)
	if err != nil {
		return nil, err
	}
	box.path = path
	return box, nil
}

// LoadOrCreateKey reads the key file, or creates it (mode 0600) when it does
// not exist and create is true. created reports whether a new key was made.
func LoadOrCreateKey(path string, create bool) (box *Box, created bool, err error) {
	box, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		return box, false, err
	}
	key := make([]byte, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	if err := secretfile.CreateExclusive(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
		return nil, false, fmt.Errorf("creating credentials key %s: %w", path, err)
	}
	box, err = NewBox(key)
	if err != nil {
		return nil, false, err
	}
	box.path = path
	return box, true, nil
}

// Seal encrypts plaintext; additional binds it to its context (e.g. the product id).
func (b *Box) Seal(plaintext, additional []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, additional), nil
}

// Open decrypts a value made by Seal.
func (b *Box) Open(sealed, additional []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], additional)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
