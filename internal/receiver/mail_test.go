package receiver

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestMailTexts checks the receiver's alert mails word for word.
func TestMailTexts(t *testing.T) {
	at := time.Date(2026, 4, 3, 0, 30, 0, 0, time.UTC)
	r := &Receiver{id: "0123456789abcdef0123456789abcdef", AlertTo: []string{"fleet@provider.example"}, Now: func() time.Time { return at }}
	r.DueDay = 3
	for name, m := range map[string]func() (string, mailData){
		"silent.golden":  func() (string, mailData) { return r.silentMail("a1", at.Add(-150*time.Minute)) },
		"missing.golden": func() (string, mailData) { return r.missingMail("a1", "2026-03") },
		"failed.golden": func() (string, mailData) {
			return r.failedMail("a1", "2026-03", 2, "decrypting message: openpgp: invalid data: parsing error")
		},
	} {
		subj, d := m()
		mail := r.mail("x", subj, d)
		got := "Subject: " + mail.Subject + "\nTo: " + mail.To[0] + "\n\n" + mail.Text
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}
