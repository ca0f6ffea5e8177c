package appliance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
)

// TestBackupJob (issue 16): the daemon's backup job writes an archive that
// restores onto a fresh appliance (same appliance, products and usage),
// keeps the newest backup.keep archives and none older than
// backup.retention_days, touches no other file of the directory, and a
// failure (a directory that cannot be created) is an alert saying what to
// do, resolved by the next archive written.
func TestBackupJob(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "backups")
	pass := filepath.Join(t.TempDir(), "backup.pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.Backup = config.Backup{Enabled: true, Schedule: "30 3 * * *", Directory: dir, Keep: 2, PassphraseFile: pass}
	})
	h.addProduct("https://vc01.example")
	for n := range 3 {
		h.hour(n)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	foreign := []string{"notes.txt", "usagemeter-backup-by-hand.pgp", "usagemeter-backup-20200101T000000Z.pgp.keep"}
	for _, f := range foreign {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not the job's"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	archives := func() []string {
		t.Helper()
		names, _, err := backupArchives(dir)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	day := time.Date(2026, 3, 14, 3, 30, 0, 0, time.UTC)
	for i := range 3 {
		h.clock.Set(day.Add(time.Duration(i) * 24 * time.Hour))
		h.d.backupJob(ctx)
	}
	want := []string{"usagemeter-backup-20260316T033000Z.pgp", "usagemeter-backup-20260315T033000Z.pgp"}
	if got := archives(); !slices.Equal(got, want) {
		t.Fatalf("archives after 3 runs with keep 2: %v, want %v\n%s", got, want, h.logs)
	}
	for _, f := range foreign {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the job deleted a file it did not write: %v", err)
		}
	}

	// The newest archive restores onto a fresh appliance.
	target := *h.app.Config
	target.DataDir = t.TempDir()
	target.Database.URL = config.Secret(pgtest.NewDatabase(t))
	target.Backup.Enabled = false
	f, err := os.Open(filepath.Join(dir, want[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	passphrase, err := ReadPassphraseFile(pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, &target, f, BackupKey{Passphrase: passphrase}, h.logs, false); err != nil {
		t.Fatal(err)
	}
	restored, err := openWithConfig(ctx, h.logs, &target, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	ps, err := restored.Store.Products(ctx, false)
	if err != nil || len(ps) != 1 || ps[0].Password.Reveal() != "ProductPassw0rd" || restored.Appliance.ID != h.app.Appliance.ID {
		t.Fatalf("restored appliance %s, products %+v, %v", restored.Appliance.ID, ps, err)
	}
	var spans, runs [2]int
	for i, a := range []*App{h.app, restored} {
		if err := a.Store.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM usage_spans), (SELECT count(*) FROM collection_runs)`).Scan(&spans[i], &runs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if spans[0] == 0 || spans != [2]int{spans[0], spans[0]} || runs != [2]int{3, 3} {
		t.Fatalf("spans %v, runs %v (backed up, restored)", spans, runs)
	}

	// Retention by age: archives older than a day go, the new one stays.
	h.app.Config.Backup.Keep, h.app.Config.Backup.RetentionDays = 5, 1
	h.clock.Set(day.Add(73 * time.Hour))
	h.d.backupJob(ctx)
	if got := archives(); !slices.Equal(got, []string{"usagemeter-backup-20260317T043000Z.pgp"}) {
		t.Fatalf("archives with retention_days 1: %v", got)
	}

	// A directory that cannot be created: an alert with what to do.
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.app.Config.Backup.Directory = filepath.Join(blocker, "backups")
	h.clock.Set(day.Add(96 * time.Hour))
	h.d.backupJob(ctx)
	a, err := h.app.Store.OpenAlert(ctx, alert.KindBackupFailed)
	if err != nil || !strings.Contains(a.LastError, "backup.directory") {
		t.Fatalf("backup alert after a failure: %+v, %v\n%s", a, err, h.logs)
	}
	mails, err := h.app.Store.ClaimMail(ctx, day.Add(1000*time.Hour), 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, m := range mails {
		if m.Subject == "[usagemeter] backup failed" {
			text = m.Text
		}
	}
	if !strings.Contains(text, blocker) || !strings.Contains(text, "What to do: Check that") || !strings.Contains(text, "There is no backup") {
		t.Fatalf("backup failed mail:\n%s", text)
	}
	h.app.Config.Backup.Directory = dir
	h.d.backupJob(ctx)
	if _, err := h.app.Store.OpenAlert(ctx, alert.KindBackupFailed); err == nil {
		t.Fatal("the backup alert stays open after a backup was written")
	}
}

// TestBackupConfigCheck: config check reads an enabled backup section's key
// as the job will: a short passphrase, or a public key that cannot encrypt
// (a file that is no key), is refused naming the key.
func TestBackupConfigCheck(t *testing.T) {
	dir := t.TempDir()
	short, notKey := filepath.Join(dir, "short.pass"), filepath.Join(dir, "not-a-key.asc")
	for p, s := range map[string]string{short: "tooshort\n", notKey: "hello\n"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		b    config.Backup
		want string
	}{
		{config.Backup{Enabled: true, PassphraseFile: short}, "backup.passphrase_file " + short + ": the passphrase is shorter than 12 characters"},
		{config.Backup{Enabled: true, RecipientKeyFile: notKey}, "backup.recipient_key_file " + notKey + ": "},
		{config.Backup{Enabled: false, PassphraseFile: short}, ""},
	} {
		c := config.Default()
		c.Backup = tc.b
		err := checkBackup(&c)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.b, err, tc.want)
		}
	}
}
