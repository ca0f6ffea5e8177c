package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/usagemeter/usagemeter/anonymize"
)

// Verified is the outcome of VerifyFile.
type Verified struct {
	Manifest  *Manifest
	Encrypted bool
	Signer    string // signer fingerprint, when encrypted
	Plain     []byte // the plain bundle
}

// IsPlainBundle reports whether b starts like a .tar.gz.
func IsPlainBundle(b []byte) bool { return len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b }

// VerifyFile checks a report bundle file: a plain .tar.gz against its
// manifest; an encrypted one is first decrypted with keyring (a recipient's
// private key) and its signature checked against signers (the appliance's
// public key), then its manifest.
func VerifyFile(path string, keyring, signers openpgp.EntityList) (*Verified, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := &Verified{Plain: data}
	if !IsPlainBundle(data) {
		if len(keyring) == 0 {
			return nil, errors.New("the file is encrypted to the aggregator's keys: give a recipient's private key (--key), or verify the plain bundle kept next to it (the same name without .gpg)")
		}
		plain, fpr, err := DecryptAndVerify(bytes.NewReader(data), keyring, signers)
		if err != nil {
			return nil, err
		}
		v.Encrypted, v.Signer, v.Plain = true, fpr, plain
	}
	v.Manifest, err = VerifyBundle(v.Plain)
	if err != nil {
		return v, err
	}
	return v, nil
}

// ReverseBundle writes every file of a plain bundle to w with the hashes of
// the reverse map replaced by their clear names, each file under a
// "==> name <==" line. It is the provider's clear-text view of its own
// report.
func ReverseBundle(tgz []byte, m map[string]anonymize.Entry, w io.Writer) error {
	files, err := ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	for i, f := range files {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "==> %s <==\n", anonymize.Reverse(f.Name, m))
		if _, err := io.WriteString(w, anonymize.Reverse(string(f.Data), m)); err != nil {
			return err
		}
	}
	return nil
}

// EncryptedTo returns the key ids a binary OpenPGP message is encrypted to
// (its public-key encrypted session key packets), sorted.
func EncryptedTo(msg []byte) ([]uint64, error) {
	pr := packet.NewReader(bytes.NewReader(msg))
	var ids []uint64
	for {
		p, err := pr.Next()
		if err != nil {
			if err == io.EOF || len(ids) > 0 {
				break
			}
			return nil, fmt.Errorf("reading message: %w", err)
		}
		ek, ok := p.(*packet.EncryptedKey)
		if !ok {
			break // the encrypted data follows the session key packets
		}
		ids = append(ids, ek.KeyId)
	}
	slices.Sort(ids)
	return ids, nil
}

// recipientIDs are the ids of the encryption keys a message to rs uses now.
func recipientIDs(rs openpgp.EntityList, now time.Time) []uint64 {
	var ids []uint64
	for _, e := range rs {
		if k, ok := e.EncryptionKey(now); ok {
			ids = append(ids, k.PublicKey.KeyId)
		}
	}
	slices.Sort(ids)
	return ids
}
