package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	tok, text, err := NewToken(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseToken(" " + text + "\n")
	if err != nil || got != tok {
		t.Fatalf("%v %+v", err, got)
	}
	for _, bad := range []string{"", "umr1.x.y", "umr2." + tok.Secret + "." + strings.Repeat("ab", 32), "umr1." + tok.Secret + ".abcd"} {
		if _, err := ParseToken(bad); err == nil || strings.Contains(err.Error(), tok.Secret) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCheckSigned(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Date(2026, 4, 1, 2, 0, 0, 0, time.UTC)
	ts, nonce := now.Format(time.RFC3339), strings.Repeat("0f", 16)
	msg := UploadMessage("app", "2026-03", 1, "AA", ts, nonce)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	if err := CheckSigned(pub, msg, ts, nonce, sig, now.Add(9*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The checksum's case does not matter; any other field does.
	if err := CheckSigned(pub, UploadMessage("app", "2026-03", 1, "aa", ts, nonce), ts, nonce, sig, now); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]error{
		"version": CheckSigned(pub, UploadMessage("app", "2026-03", 2, "AA", ts, nonce), ts, nonce, sig, now),
		"late":    CheckSigned(pub, msg, ts, nonce, sig, now.Add(11*time.Minute)),
		"early":   CheckSigned(pub, msg, ts, nonce, sig, now.Add(-11*time.Minute)),
		"nonce":   CheckSigned(pub, msg, ts, "xyz", sig, now),
		"sig":     CheckSigned(pub, msg, ts, nonce, "", now),
	} {
		if c == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFingerprint(t *testing.T) {
	k1, k2 := []byte("fleet-key-1-fleet-key-1-fleet-ke"), []byte("fleet-key-2-fleet-key-2-fleet-ke")
	a := Fingerprint(k1, "5012A1B2-C3D4-E5F6-0718-293A4B5C6D7E")
	if a != Fingerprint(k1, " 5012a1b2-c3d4-e5f6-0718-293a4b5c6d7e") || a == Fingerprint(k2, "5012a1b2-c3d4-e5f6-0718-293a4b5c6d7e") ||
		a == Fingerprint(k1, "5012a1b2-c3d4-e5f6-0718-293a4b5c6d7f") || len(a) != 64 {
		t.Fatal(a)
	}
}
