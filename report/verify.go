package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"

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
