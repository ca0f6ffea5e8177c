package report

// PGP encryption and signing of report bundles.
//
// The bundle is encrypted to the aggregator's public keys and signed with the
// appliance's own key, using github.com/ProtonMail/go-crypto's openpgp
// package (the v1 API: openpgp.Encrypt with a signer, armor.Encode around
// it). The output must open with stock GnuPG 2.2 (Debian 12), so:
//
//   - The appliance key is a v4 Ed25519 (legacy EdDSA) primary key for
//     signing with a Curve25519 ECDH subkey: what `gpg --quick-gen-key
//     future-default` makes, understood by GnuPG since 2.1, and generated in
//     milliseconds where RSA 3072 takes seconds. RFC 9580 v6 keys and the new
//     Ed25519/X25519 algorithm ids are not used: GnuPG 2.2 cannot read them.
//   - Messages use SEIPD v1 (CFB with a modification detection code), AES-256
//     when every recipient accepts it, SHA-256 signatures, no compression (the
//     bundle is already gzipped). AEAD (SEIPD v2) is never enabled in the
//     config, so go-crypto never writes it even when every recipient key
//     advertises it: GnuPG 2.2 cannot decrypt it.

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/usagemeter/usagemeter/internal/secretfile"
)

const messageType = "PGP MESSAGE"

// pgpConfig is the go-crypto configuration for keys and messages; see the
// comment at the top of this file. now nil means time.Now.
func pgpConfig(now func() time.Time) *packet.Config {
	return &packet.Config{
		Algorithm:              packet.PubKeyAlgoEdDSA,
		Curve:                  packet.Curve25519,
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		Time:                   now,
	}
}

// GenerateKey returns a new appliance signing key created at now: a v4
// Ed25519 primary key (sign, certify) with a Curve25519 encryption subkey,
// one user ID "name <email>", no expiry and no passphrase.
func GenerateKey(name, email string, now time.Time) (*openpgp.Entity, error) {
	e, err := openpgp.NewEntity(name, "", email, pgpConfig(func() time.Time { return now }))
	if err != nil {
		return nil, fmt.Errorf("generating PGP key for %q <%s>: %w", name, email, err)
	}
	return e, nil
}

// LoadOrCreateKey returns the appliance signing key kept, armored and
// unprotected, in the file at path. When the file does not exist a key is
// generated with [GenerateKey] and written there with mode 0600 (the parent
// directory is created with mode 0700 if needed); name and email are used
// only then. The file is created atomically and never overwritten: a file
// that cannot be read as one usable private key is an error naming it
// (replacing the key would break every verification of older reports).
func LoadOrCreateKey(path, name, email string) (*openpgp.Entity, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		e, err := parseSigningKey(b, time.Now())
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
		return e, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	e, err := GenerateKey(name, email, time.Now())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		return nil, fmt.Errorf("serializing signing key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating signing key: %w", err)
	}
	if err := secretfile.CreateExclusive(path, buf.Bytes()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path, name, email) // created meanwhile by someone else
		}
		return nil, fmt.Errorf("creating signing key %s: %w", path, err)
	}
	return e, nil
}

func parseSigningKey(b []byte, now time.Time) (*openpgp.Entity, error) {
	el, err := readArmoredKeys(b)
	if err != nil {
		return nil, fmt.Errorf("not an armored OpenPGP private key (%w)", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("holds %d keys, want exactly one", len(el))
	}
	e := el[0]
	if e.PrivateKey == nil {
		return nil, errors.New("holds a public key only; the appliance needs its private key to sign")
	}
	if err := keyProblem(e, now, false); err != nil {
		return nil, err
	}
	k, ok := e.SigningKey(now)
	if !ok {
		return nil, errors.New("has no usable signing key")
	}
	if k.PrivateKey == nil || k.PrivateKey.Dummy() {
		return nil, errors.New("holds no private material for its signing key")
	}
	if k.PrivateKey.Encrypted {
		return nil, errors.New("private key is protected by a passphrase, which the appliance cannot enter; export it without one")
	}
	return e, nil
}

// ExportPublic returns the armored public key of e, for the aggregator to
// verify report signatures.
func ExportPublic(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(aw); err != nil {
		return nil, fmt.Errorf("exporting public key %s: %w", fingerprint(e), err)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// RecipientKeyError is the error [ReadRecipients] returns for a file it
// cannot use: Index is the position of the file in the paths given, so that
// configuration can name the key ("report.recipient_keys[1] /path: key
// expired on 2024-01-01").
type RecipientKeyError struct {
	Index int
	Path  string
	Err   error
}

func (e *RecipientKeyError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *RecipientKeyError) Unwrap() error { return e.Err }

// ReadRecipients reads the report recipients' public keys, one or more keys
// per file, armored (or binary). Every key must be usable now: a file that is
// not a public key, that holds a private key, or a key that is revoked,
// expired, not yet valid or without a valid encryption subkey is refused with
// a *RecipientKeyError naming the file and the reason. It is meant to be
// called when the configuration is loaded.
// ReadConfiguredRecipients is ReadRecipients for the files of
// report.recipient_keys: an error names the key by its place in the list
// ("report.recipient_keys[1] /path: key expired on ...").
func ReadConfiguredRecipients(paths []string) (openpgp.EntityList, error) {
	el, err := ReadRecipients(paths...)
	var rke *RecipientKeyError
	if errors.As(err, &rke) {
		return nil, fmt.Errorf("report.recipient_keys[%d] %s: %w", rke.Index, rke.Path, rke.Err)
	}
	return el, err
}

func ReadRecipients(paths ...string) (openpgp.EntityList, error) {
	if len(paths) == 0 {
		return nil, errors.New("no recipient key files given")
	}
	now := time.Now()
	var all openpgp.EntityList
	for i, path := range paths {
		el, err := readRecipientFile(path, now)
		if err != nil {
			return nil, &RecipientKeyError{Index: i, Path: path, Err: err}
		}
		all = append(all, el...)
	}
	return all, nil
}

func readRecipientFile(path string, now time.Time) (openpgp.EntityList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the path is already in RecipientKeyError
		}
		return nil, err
	}
	var el openpgp.EntityList
	if isArmored(b) {
		el, err = readArmoredKeys(b)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err == nil && len(el) == 0 {
		err = errors.New("no key found")
	}
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP public key (%w)", err)
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("holds a private key (%s); give the recipient's public key only", describe(e))
		}
		if err := keyProblem(e, now, true); err != nil {
			return nil, fmt.Errorf("%w (%s)", err, describe(e))
		}
	}
	return el, nil
}

// readArmoredKeys reads every armored key block in b (gpg reads files of
// concatenated blocks, so do we).
func readArmoredKeys(b []byte) (openpgp.EntityList, error) {
	// armor.Decode reuses a *bufio.Reader of at least 100 bytes instead of
	// wrapping it, so successive calls continue where the last block ended.
	br := bufio.NewReader(bytes.NewReader(b))
	var all openpgp.EntityList
	for {
		block, err := armor.Decode(br)
		if err == io.EOF && len(all) > 0 {
			return all, nil
		}
		if err == io.EOF {
			return nil, errors.New("no armored key found")
		}
		if err != nil {
			return nil, err
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("got a %q block, want a key block", block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
}

// keyProblem says why e cannot be used now (for encryption when encrypt is
// set), or returns nil. The texts are for administrators.
func keyProblem(e *openpgp.Entity, now time.Time, encrypt bool) error {
	sig, id := e.PrimarySelfSignature()
	switch {
	case sig == nil:
		return errors.New("key has no valid self-signature")
	case e.Revoked(now):
		if r := e.Revocations[0].RevocationReasonText; r != "" {
			return fmt.Errorf("key revoked: %s", r)
		}
		return errors.New("key revoked")
	case e.PrimaryKey.CreationTime.After(now):
		return fmt.Errorf("key created in the future, on %s (check the clock)", day(e.PrimaryKey.CreationTime))
	case e.PrimaryKey.KeyExpired(sig, now):
		return fmt.Errorf("key expired on %s", day(keyExpiry(e.PrimaryKey, sig)))
	case sig.SigExpired(now):
		return fmt.Errorf("key's self-signature expired on %s", day(sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs)*time.Second)))
	case id != nil && id.Revoked(now):
		return errors.New("user ID revoked")
	}
	if !encrypt {
		return nil
	}
	if _, ok := e.EncryptionKey(now); ok {
		return nil
	}
	var why []string
	for _, sk := range e.Subkeys {
		if sk.Sig == nil || !sk.Sig.FlagsValid || !sk.Sig.FlagEncryptCommunications {
			continue
		}
		switch {
		case sk.Revoked(now):
			why = append(why, fmt.Sprintf("encryption subkey %s revoked", sk.PublicKey.KeyIdString()))
		case sk.PublicKey.KeyExpired(sk.Sig, now):
			why = append(why, fmt.Sprintf("encryption subkey %s expired on %s", sk.PublicKey.KeyIdString(), day(keyExpiry(sk.PublicKey, sk.Sig))))
		case !sk.PublicKey.PubKeyAlgo.CanEncrypt():
			why = append(why, fmt.Sprintf("encryption subkey %s has algorithm %d, which cannot encrypt", sk.PublicKey.KeyIdString(), sk.PublicKey.PubKeyAlgo))
		default:
			why = append(why, fmt.Sprintf("encryption subkey %s is not valid now", sk.PublicKey.KeyIdString()))
		}
	}
	if len(why) == 0 {
		return errors.New("key has no encryption subkey")
	}
	return errors.New(strings.Join(why, "; "))
}

func keyExpiry(pk *packet.PublicKey, sig *packet.Signature) time.Time {
	if sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}
	}
	return pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// fingerprint is the upper-case hex fingerprint of e's primary key, as gpg
// prints it.
func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// describe names a key for error messages: primary user ID and fingerprint.
func describe(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return fmt.Sprintf("%s, fingerprint %s", id.Name, fingerprint(e))
	}
	return "fingerprint " + fingerprint(e)
}

// EncryptAndSign writes plaintext to w encrypted to every recipient and
// signed by signer, as an OpenPGP message that stock gpg decrypts and
// verifies. filename is recorded in the literal data packet (gpg uses it
// with --use-embedded-filename). With armor the output is ASCII-armored
// ("-----BEGIN PGP MESSAGE-----"), otherwise binary (.gpg).
//
// The recipients are checked again before use (a key valid when the
// configuration was loaded may have expired since) and the signer must hold
// an unprotected private signing key.
func EncryptAndSign(w io.Writer, plaintext io.Reader, filename string, recipients openpgp.EntityList, signer *openpgp.Entity, armor bool) error {
	cfg := pgpConfig(nil)
	now := cfg.Now()
	if len(recipients) == 0 {
		return errors.New("encrypting report: no recipients")
	}
	for _, r := range recipients {
		if err := keyProblem(r, now, true); err != nil {
			return fmt.Errorf("encrypting report: recipient %s: %w", describe(r), err)
		}
	}
	if signer == nil {
		return errors.New("encrypting report: no signing key")
	}
	if err := keyProblem(signer, now, false); err != nil {
		return fmt.Errorf("encrypting report: signing key %s: %w", describe(signer), err)
	}
	if k, ok := signer.SigningKey(now); !ok || k.PrivateKey == nil || k.PrivateKey.Encrypted {
		return fmt.Errorf("encrypting report: signing key %s has no unprotected private signing key", describe(signer))
	}

	out := w
	var aw io.WriteCloser
	if armor {
		var err error
		if aw, err = armorEncode(w); err != nil {
			return fmt.Errorf("encrypting report: %w", err)
		}
		out = aw
	}
	hints := &openpgp.FileHints{IsBinary: true, FileName: filename, ModTime: now}
	pt, err := openpgp.Encrypt(out, recipients, signer, hints, cfg)
	if err != nil {
		return fmt.Errorf("encrypting report: %w", err)
	}
	if _, err := io.Copy(pt, plaintext); err != nil {
		pt.Close()
		return fmt.Errorf("encrypting report: %w", err)
	}
	if err := pt.Close(); err != nil {
		return fmt.Errorf("encrypting report: %w", err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			return fmt.Errorf("encrypting report: %w", err)
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return fmt.Errorf("encrypting report: %w", err)
		}
	}
	return nil
}

func armorEncode(w io.Writer) (io.WriteCloser, error) {
	return armor.Encode(w, messageType, nil)
}

// DecryptAndVerify decrypts an OpenPGP message, armored or binary, with the
// private keys in keyring, and checks that it is signed by a key in
// signerKeyring. It returns the plaintext and the signer's primary key
// fingerprint (upper-case hex, as gpg prints it). A message that is not
// encrypted, not signed, signed by a key outside signerKeyring, badly signed
// or altered is an error; no plaintext is returned then. It is used by
// `usagemeter report verify` and by tests.
func DecryptAndVerify(r io.Reader, keyring openpgp.EntityList, signerKeyring openpgp.EntityList) ([]byte, string, error) {
	var plain []byte
	fpr, err := DecryptAndVerifyTo(r, keyring, signerKeyring, func(body io.Reader) error {
		var err error
		plain, err = io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("decrypting message: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return plain, fpr, nil
}

// DecryptAndVerifyTo is DecryptAndVerify that streams the plaintext to
// consume instead of holding it: what consume reads is not yet verified,
// and the result is accepted only when consume and the signature check at
// the end of the message both succeed.
func DecryptAndVerifyTo(r io.Reader, keyring openpgp.EntityList, signerKeyring openpgp.EntityList, consume func(plain io.Reader) error) (string, error) {
	br := bufio.NewReader(r)
	var body io.Reader = br
	if head, _ := br.Peek(64); isArmored(head) {
		block, err := armor.Decode(br)
		if err != nil {
			return "", fmt.Errorf("reading armored message: %w", err)
		}
		if block.Type != messageType {
			return "", fmt.Errorf("reading armored message: got a %q block, want %q", block.Type, messageType)
		}
		body = block.Body
	}
	md, err := openpgp.ReadMessage(body, splitKeyring{decrypt: keyring, verify: signerKeyring}, nil, pgpConfig(nil))
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return "", errors.New("decrypting message: none of the given private keys can decrypt it")
		}
		return "", fmt.Errorf("decrypting message: %w", err)
	}
	if !md.IsEncrypted {
		return "", errors.New("message is not encrypted")
	}
	plain := &onceEOF{r: md.UnverifiedBody}
	if cerr := consume(plain); cerr != nil {
		// What consume refused may be an altered message: say so if the
		// rest of it tells.
		if _, err := io.Copy(io.Discard, plain); err != nil {
			return "", fmt.Errorf("decrypting message: %w", err)
		}
		if md.SignatureError != nil && md.SignedBy != nil {
			return "", fmt.Errorf("bad signature by %s: %w", describe(md.SignedBy.Entity), md.SignatureError)
		}
		return "", cerr
	}
	// The signature is checked once the body is read to its end.
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return "", fmt.Errorf("decrypting message: %w", err)
	}
	switch {
	case !md.IsSigned:
		return "", errors.New("message is not signed")
	case md.SignedBy == nil:
		return "", fmt.Errorf("message is signed by unknown key %016X", md.SignedByKeyId)
	case md.SignatureError != nil:
		return "", fmt.Errorf("bad signature by %s: %w", describe(md.SignedBy.Entity), md.SignatureError)
	case md.Signature == nil:
		return "", errors.New("message signature missing")
	}
	return fingerprint(md.SignedBy.Entity), nil
}

// splitKeyring decrypts with one key list and verifies signatures with
// another, so that a signature by a decryption key is not taken for the
// expected signer's.
// onceEOF reads r until its first error and returns that error from then
// on: go-crypto's message body must not be read again after its end (its
// integrity check would run twice).
type onceEOF struct {
	r   io.Reader
	err error
}

func (o *onceEOF) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.r.Read(p)
	o.err = err
	return n, err
}

type splitKeyring struct{ decrypt, verify openpgp.EntityList }

func (k splitKeyring) KeysById(id uint64) []openpgp.Key { return k.decrypt.KeysById(id) }
func (k splitKeyring) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	return k.verify.KeysByIdUsage(id, usage)
}
func (k splitKeyring) DecryptionKeys() []openpgp.Key { return k.decrypt.DecryptionKeys() }

func isArmored(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("-----BEGIN "))
}
