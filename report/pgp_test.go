package report

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// gpgHome is a throw-away GnuPG home directory for one test.
type gpgHome struct {
	t    *testing.T
	bin  string
	dir  string
	home string
}

// newGPGHome fails the test when gpg is missing: the promise that anyone
// with the key decrypts a report with stock gpg is what these tests check.
func newGPGHome(t *testing.T) *gpgHome {
	t.Helper()
	bin, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal("gpg not found: install gnupg (the report tests decrypt with the real gpg binary)")
	}
	// Short path under the system temp dir: gpg-agent's socket path must fit
	// in 108 bytes, which t.TempDir() paths do not always do.
	dir, err := os.MkdirTemp("", "umgpg")
	if err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, bin: bin, dir: dir, home: filepath.Join(dir, "h")}
	if err := os.Mkdir(g.home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(gpgconf, "--kill", "all")
			cmd.Env = g.env()
			_ = cmd.Run()
		}
		os.RemoveAll(dir)
	})
	return g
}

func (g *gpgHome) env() []string { return append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C") }

// run runs gpg in batch mode and returns its status-fd output.
func (g *gpgHome) run(stdin []byte, args ...string) (status string, err error) {
	g.t.Helper()
	args = append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "",
		"--trust-model", "always", "--status-fd", "1"}, args...)
	cmd := exec.Command(g.bin, args...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("gpg %s: %v\nstatus:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func (g *gpgHome) importKey(key []byte) {
	g.t.Helper()
	if _, err := g.run(key, "--import"); err != nil {
		g.t.Fatal(err)
	}
}

// decrypt decrypts message with gpg, returning the plaintext and the status
// lines.
func (g *gpgHome) decrypt(message []byte) ([]byte, string) {
	g.t.Helper()
	in := filepath.Join(g.dir, "message")
	out := filepath.Join(g.dir, "plaintext")
	os.Remove(out)
	if err := os.WriteFile(in, message, 0o600); err != nil {
		g.t.Fatal(err)
	}
	status, err := g.run(nil, "--output", out, "--decrypt", in)
	if err != nil {
		g.t.Fatal(err)
	}
	plain, err := os.ReadFile(out)
	if err != nil {
		g.t.Fatal(err)
	}
	return plain, status
}

func armoredPrivate(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	buf.WriteByte('\n')
	return buf.Bytes()
}

func mustPublic(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	b, err := ExportPublic(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustKey(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := GenerateKey(name, strings.ToLower(strings.Fields(name)[0])+"@example.com", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// publicOnly returns e as a recipient sees it: read back from its exported
// public key.
func publicOnly(t *testing.T, e *openpgp.Entity) *openpgp.Entity {
	t.Helper()
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(mustPublic(t, e)))
	if err != nil {
		t.Fatal(err)
	}
	return el[0]
}

func randomPayload(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func encrypt(t *testing.T, payload []byte, recipients openpgp.EntityList, signer *openpgp.Entity, armored bool) []byte {
	t.Helper()
	var msg bytes.Buffer
	if err := EncryptAndSign(&msg, bytes.NewReader(payload), "usage-2026-10.tar.gz", recipients, signer, armored); err != nil {
		t.Fatal(err)
	}
	return msg.Bytes()
}

func TestEncryptAndSignDecryptsWithGPG(t *testing.T) {
	g := newGPGHome(t)
	// The signer goes through LoadOrCreateKey and back, as on the appliance.
	keyPath := filepath.Join(t.TempDir(), "signing.asc")
	if _, err := LoadOrCreateKey(keyPath, "usagemeter appliance", "meter@example.com"); err != nil {
		t.Fatal(err)
	}
	signer, err := LoadOrCreateKey(keyPath, "ignored", "ignored@example.com")
	if err != nil {
		t.Fatal(err)
	}
	recipient := mustKey(t, "Aggregator")
	g.importKey(armoredPrivate(t, recipient))
	g.importKey(mustPublic(t, signer))

	payload := randomPayload(t, 200<<10)
	for _, armored := range []bool{true, false} {
		t.Run(fmt.Sprintf("armor=%v", armored), func(t *testing.T) {
			msg := encrypt(t, payload, openpgp.EntityList{publicOnly(t, recipient)}, signer, armored)
			if got := bytes.HasPrefix(msg, []byte("-----BEGIN PGP MESSAGE-----")); got != armored {
				t.Errorf("armored output: %v, want %v", got, armored)
			}
			plain, status := g.decrypt(msg)
			if !bytes.Equal(plain, payload) {
				t.Fatalf("gpg decrypted %d bytes, want the %d-byte payload", len(plain), len(payload))
			}
			fpr := fingerprint(signer)
			for _, want := range []string{"DECRYPTION_OKAY", "GOODSIG " + signer.PrimaryKey.KeyIdString(), "VALIDSIG " + fpr, "PLAINTEXT 62 ", "usage-2026-10.tar.gz"} {
				if !strings.Contains(status, want) {
					t.Errorf("gpg status lacks %q:\n%s", want, status)
				}
			}
			for _, bad := range []string{"BADSIG", "ERRSIG", "DECRYPTION_FAILED", "NO_PUBKEY"} {
				if strings.Contains(status, bad) {
					t.Errorf("gpg status has %s:\n%s", bad, status)
				}
			}

			got, gotFpr, err := DecryptAndVerify(bytes.NewReader(msg), openpgp.EntityList{recipient}, openpgp.EntityList{publicOnly(t, signer)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) || gotFpr != fpr {
				t.Errorf("DecryptAndVerify: %d bytes, signer %s; want %d bytes, signer %s", len(got), gotFpr, len(payload), fpr)
			}
		})
	}
}

func TestEncryptAndSignMultipleRecipients(t *testing.T) {
	signer := mustKey(t, "usagemeter appliance")
	// An Ed25519/Curve25519 recipient and an RSA one, as an aggregator's
	// older gpg key would be.
	rsaKey, err := openpgp.NewEntity("Aggregator RSA", "", "rsa@example.com", &packet.Config{
		Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048, Time: func() time.Time { return time.Now().Add(-time.Minute) },
	})
	if err != nil {
		t.Fatal(err)
	}
	recipients := []*openpgp.Entity{mustKey(t, "Aggregator"), rsaKey, mustKey(t, "Auditor")}
	var public openpgp.EntityList
	for _, r := range recipients {
		public = append(public, publicOnly(t, r))
	}
	payload := []byte("Monthly_Usage.tsv\tand friends\n")
	msg := encrypt(t, payload, public, signer, true)

	for _, r := range recipients {
		t.Run(r.PrimaryIdentity().Name, func(t *testing.T) {
			g := newGPGHome(t)
			g.importKey(armoredPrivate(t, r))
			g.importKey(mustPublic(t, signer))
			plain, status := g.decrypt(msg)
			if !bytes.Equal(plain, payload) {
				t.Errorf("gpg decrypted %q", plain)
			}
			if !strings.Contains(status, "VALIDSIG "+fingerprint(signer)) {
				t.Errorf("gpg did not validate the signature:\n%s", status)
			}
			if _, _, err := DecryptAndVerify(bytes.NewReader(msg), openpgp.EntityList{r}, openpgp.EntityList{signer}); err != nil {
				t.Error(err)
			}
		})
	}
}

// keyAt returns a key created at created, valid for lifetime (0: forever).
func keyAt(t *testing.T, name string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	cfg := pgpConfig(func() time.Time { return created })
	cfg.KeyLifetimeSecs = uint32(lifetime / time.Second)
	e, err := openpgp.NewEntity(name, "", "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestReadRecipients(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mustKey(t, "Aggregator")
	second := mustKey(t, "Auditor")
	goodPath := write("good.asc", mustPublic(t, good))
	var bin bytes.Buffer
	if err := second.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	binPath := write("second.gpg", bin.Bytes())

	el, err := ReadRecipients(goodPath, binPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(el) != 2 || fingerprint(el[0]) != fingerprint(good) || fingerprint(el[1]) != fingerprint(second) {
		t.Fatalf("ReadRecipients read %d keys", len(el))
	}
	both := write("both.asc", append(mustPublic(t, good), mustPublic(t, second)...))
	if el, err := ReadRecipients(both); err != nil || len(el) != 2 {
		t.Fatalf("two keys in one file: %d keys, %v", len(el), err)
	}

	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	expired := keyAt(t, "Expired", day("2023-01-01"), 365*24*time.Hour)
	future := keyAt(t, "Future", time.Now().AddDate(1, 0, 0), 0)
	revoked := mustKey(t, "Revoked")
	if err := revoked.RevokeKey(packet.KeySuperseded, "superseded by 2026 key", nil); err != nil {
		t.Fatal(err)
	}
	noSub := mustKey(t, "Sign Only")
	noSub.Subkeys = nil
	oldSub := keyAt(t, "Old Subkey", time.Now().AddDate(-2, 0, 0), 0)
	oldSub.Subkeys = nil
	subCfg := pgpConfig(func() time.Time { return day("2024-06-01") })
	subCfg.KeyLifetimeSecs = 30 * 24 * 3600
	if err := oldSub.AddEncryptionSubkey(subCfg); err != nil {
		t.Fatal(err)
	}
	revokedSub := mustKey(t, "Revoked Subkey")
	if err := revokedSub.RevokeSubkey(&revokedSub.Subkeys[0], packet.KeyCompromised, "lost laptop", nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		contents []byte
		want     string
	}{
		{"expired", mustPublic(t, expired), "key expired on 2024-01-01 (Expired, fingerprint " + fingerprint(expired) + ")"},
		{"future", mustPublic(t, future), "key created in the future, on " + future.PrimaryKey.CreationTime.UTC().Format(time.DateOnly)},
		{"revoked", mustPublic(t, revoked), "key revoked: superseded by 2026 key"},
		{"no encryption subkey", mustPublic(t, noSub), "key has no encryption subkey"},
		{"expired subkey", mustPublic(t, oldSub), "encryption subkey " + oldSub.Subkeys[0].PublicKey.KeyIdString() + " expired on 2024-07-01"},
		{"revoked subkey", mustPublic(t, revokedSub), "encryption subkey " + revokedSub.Subkeys[0].PublicKey.KeyIdString() + " revoked"},
		{"private key", armoredPrivate(t, good), "holds a private key (Aggregator <aggregator@example.com>"},
		{"malformed armor", []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all!\n-----END PGP PUBLIC KEY BLOCK-----\n"), "not an OpenPGP public key"},
		{"text", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 admin@example.com\n"), "not an OpenPGP public key"},
		{"empty", nil, "not an OpenPGP public key"},
		{"message not key", encrypt(t, []byte("x"), openpgp.EntityList{good}, good, true), "not an OpenPGP public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tc.name, " ", "_")+".asc", tc.contents)
			_, err := ReadRecipients(goodPath, path)
			var rke *RecipientKeyError
			if !errors.As(err, &rke) {
				t.Fatalf("error %v (%T), want *RecipientKeyError", err, err)
			}
			if rke.Index != 1 || rke.Path != path {
				t.Errorf("error for file %d %s, want 1 %s", rke.Index, rke.Path, path)
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant %q after %q", err, tc.want, path+": ")
			}
		})
	}

	missing := filepath.Join(dir, "missing.asc")
	if _, err := ReadRecipients(missing); err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadRecipients(); err == nil {
		t.Error("no paths: no error")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "signing.asc")
	e1, err := LoadOrCreateKey(path, "usagemeter appliance 42", "meter@example.com")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		t.Errorf("key file does not hold an armored private key:\n%.80s", b)
	}
	if id := e1.PrimaryIdentity().Name; id != "usagemeter appliance 42 <meter@example.com>" {
		t.Errorf("user ID %q", id)
	}
	if algo := e1.PrimaryKey.PubKeyAlgo; algo != packet.PubKeyAlgoEdDSA {
		t.Errorf("primary key algorithm %v, want EdDSA (legacy, v4) for gpg 2.2", algo)
	}
	e2, err := LoadOrCreateKey(path, "other", "other@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if fingerprint(e1) != fingerprint(e2) {
		t.Errorf("reloaded key %s, created %s", fingerprint(e2), fingerprint(e1))
	}

	protected := mustKey(t, "Protected")
	if err := protected.EncryptPrivateKeys([]byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		contents []byte
		want     string
	}{
		{"public only", mustPublic(t, e1), "holds a public key only"},
		{"malformed", []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\ngarbage\n"), "not an armored OpenPGP private key"},
		{"empty", nil, "not an armored OpenPGP private key"},
		{"two keys", append(armoredPrivate(t, mustKey(t, "One")), armoredPrivate(t, mustKey(t, "Two"))...), "holds 2 keys, want exactly one"},
		{"passphrase", armoredPrivate(t, protected), "protected by a passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "signing.asc")
			if err := os.WriteFile(p, tc.contents, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateKey(p, "x", "x@example.com")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want %q naming %s", err, tc.want, p)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(after, tc.contents) {
				t.Error("key file was rewritten")
			}
		})
	}
}

func TestEncryptAndSignRefuses(t *testing.T) {
	signer := mustKey(t, "usagemeter appliance")
	recipient := publicOnly(t, mustKey(t, "Aggregator"))
	expired := keyAt(t, "Expired", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), 365*24*time.Hour)
	for _, tc := range []struct {
		name       string
		recipients openpgp.EntityList
		signer     *openpgp.Entity
		want       string
	}{
		{"no recipients", nil, signer, "no recipients"},
		{"expired recipient", openpgp.EntityList{recipient, expired}, signer, "recipient Expired, fingerprint " + fingerprint(expired) + ": key expired on 2024-01-01"},
		{"no signer", openpgp.EntityList{recipient}, nil, "no signing key"},
		{"public signer", openpgp.EntityList{recipient}, publicOnly(t, signer), "no unprotected private signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := EncryptAndSign(&out, strings.NewReader("payload"), "f", tc.recipients, tc.signer, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDecryptAndVerifyRefuses(t *testing.T) {
	signer := mustKey(t, "usagemeter appliance")
	other := mustKey(t, "Impostor")
	recipient := mustKey(t, "Aggregator")
	stranger := mustKey(t, "Stranger")
	payload := randomPayload(t, 4096)
	to := openpgp.EntityList{publicOnly(t, recipient)}
	good := encrypt(t, payload, to, signer, false)
	goodArmored := encrypt(t, payload, to, signer, true)

	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 0x01
	var tamperedArmored bytes.Buffer
	aw, err := armor.Encode(&tamperedArmored, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	aw.Write(tampered)
	aw.Close()

	unsigned := func() []byte {
		var buf bytes.Buffer
		w, err := openpgp.Encrypt(&buf, to, nil, nil, pgpConfig(nil))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(payload)
		w.Close()
		return buf.Bytes()
	}()
	signedOnly := func() []byte {
		var buf bytes.Buffer
		w, err := openpgp.Sign(&buf, signer, nil, pgpConfig(nil))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(payload)
		w.Close()
		return buf.Bytes()
	}()
	// Signed by the recipient's own key: must not pass for the appliance's.
	selfSigned := encrypt(t, payload, to, recipient, false)

	trusted := openpgp.EntityList{publicOnly(t, signer)}
	for _, tc := range []struct {
		name    string
		msg     []byte
		keyring openpgp.EntityList
		signers openpgp.EntityList
		want    string
	}{
		{"tampered", tampered, openpgp.EntityList{recipient}, trusted, ""},
		{"tampered armored", tamperedArmored.Bytes(), openpgp.EntityList{recipient}, trusted, ""},
		{"unsigned", unsigned, openpgp.EntityList{recipient}, trusted, "not signed"},
		{"not encrypted", signedOnly, openpgp.EntityList{recipient}, trusted, "not encrypted"},
		{"unknown signer", good, openpgp.EntityList{recipient}, openpgp.EntityList{other}, "signed by unknown key " + signer.PrimaryKey.KeyIdString()},
		{"signed by decryption key", selfSigned, openpgp.EntityList{recipient}, trusted, "signed by unknown key"},
		{"wrong key", good, openpgp.EntityList{stranger}, trusted, "none of the given private keys can decrypt it"},
		{"public key only", good, openpgp.EntityList{publicOnly(t, recipient)}, trusted, "none of the given private keys can decrypt it"},
		{"garbage", []byte("hello"), openpgp.EntityList{recipient}, trusted, "decrypting message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, fpr, err := DecryptAndVerify(bytes.NewReader(tc.msg), tc.keyring, tc.signers)
			if err == nil {
				t.Fatalf("accepted: %d bytes signed by %s", len(plain), fpr)
			}
			if plain != nil || fpr != "" {
				t.Error("returned plaintext or signer with an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}

	// And the good ones pass.
	for _, msg := range [][]byte{good, goodArmored} {
		if _, fpr, err := DecryptAndVerify(bytes.NewReader(msg), openpgp.EntityList{recipient}, trusted); err != nil || fpr != fingerprint(signer) {
			t.Errorf("good message: %s, %v", fpr, err)
		}
	}
}

// A message made by gpg itself (as an aggregator testing its set-up might)
// passes DecryptAndVerify: the reader is not tied to go-crypto's output.
func TestDecryptAndVerifyReadsGPGOutput(t *testing.T) {
	g := newGPGHome(t)
	signer := mustKey(t, "usagemeter appliance")
	recipient := mustKey(t, "Aggregator")
	g.importKey(armoredPrivate(t, signer))
	g.importKey(mustPublic(t, recipient))
	payload := []byte(strings.Repeat("vm\tcafe\t4096\n", 1000))
	in := filepath.Join(g.dir, "payload")
	out := filepath.Join(g.dir, "payload.asc")
	if err := os.WriteFile(in, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := g.run(nil, "--armor", "--sign", "--encrypt", "--local-user", fingerprint(signer),
		"--recipient", fingerprint(recipient), "--output", out, in); err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	plain, fpr, err := DecryptAndVerify(bytes.NewReader(msg), openpgp.EntityList{recipient}, openpgp.EntityList{publicOnly(t, signer)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, payload) || fpr != fingerprint(signer) {
		t.Errorf("DecryptAndVerify: %d bytes signed by %s", len(plain), fpr)
	}
}

func TestExportPublicHasNoPrivateKey(t *testing.T) {
	e := mustKey(t, "usagemeter appliance")
	pub := mustPublic(t, e)
	if !bytes.HasPrefix(pub, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("not an armored public key:\n%.80s", pub)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	if len(el) != 1 || el[0].PrivateKey != nil || el[0].Subkeys[0].PrivateKey != nil {
		t.Error("exported public key carries private key material")
	}
	if fingerprint(el[0]) != fingerprint(e) {
		t.Error("exported another key")
	}
}
