package auth

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("Corr3ct-Horse-Battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "Corr3ct") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := HashPassword("Corr3ct-Horse-Battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"Corr3ct-Horse-Battery": true, "corr3ct-Horse-Battery": false, "": false} {
		if ok, err := VerifyPassword(h, pw); err != nil || ok != want {
			t.Errorf("verify %q: %v %v", pw, ok, err)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=18$m=1,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=x$c2FsdA$aGFzaA", "$argon2id$v=19$m=1,t=1,p=1$!!$aGFzaA"} {
		if ok, err := VerifyPassword(bad, "x"); ok || err == nil {
			t.Errorf("malformed hash %q accepted: %v %v", bad, ok, err)
		}
	}
	for pw, want := range map[string]string{"short": "at least 12", "  leading-space-pw": "white space", strings.Repeat("x", 1025): "at most 1024", "long-enough-password": ""} {
		err := CheckPassword(pw)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckPassword(%.20q): %v, want %q", pw, err, want)
		}
	}
}
