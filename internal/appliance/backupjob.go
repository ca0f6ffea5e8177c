package appliance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/report"
)

// The daemon's backup job (config backup:): on its schedule it writes the
// archive of `usagemeter backup` into backup.directory as
// usagemeter-backup-<UTC time>.pgp, then deletes the archives of that name
// beyond backup.keep and older than backup.retention_days; no other file of
// the directory is touched. A failure is an alert (backup_failed) saying
// what to do; the next archive written resolves it.

// backupArchive matches the name of an archive the job wrote, with its time.
var backupArchive = regexp.MustCompile(`^usagemeter-backup-(\d{8}T\d{6}Z)\.pgp$`)

const backupTimeLayout = "20060102T150405Z"

// ErrShortPassphrase refuses a backup passphrase of fewer than 12 characters.
var ErrShortPassphrase = errors.New("the passphrase is shorter than 12 characters")

// ReadPassphraseFile reads a backup passphrase: the first line of the file,
// 12 characters or more.
func ReadPassphraseFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, _, _ := strings.Cut(string(b), "\n")
	p = strings.TrimRight(p, "\r")
	if len(p) < 12 {
		return nil, ErrShortPassphrase
	}
	return []byte(p), nil
}

// backupKey reads the key of the backup section: the passphrase, or the
// recipient's public key (usable now: not expired, able to encrypt).
func backupKey(b config.Backup) (BackupKey, error) {
	var key BackupKey
	var err error
	if b.PassphraseFile != "" {
		if key.Passphrase, err = ReadPassphraseFile(b.PassphraseFile); err != nil {
			return key, fmt.Errorf("backup.passphrase_file %s: %w", b.PassphraseFile, err)
		}
		return key, nil
	}
	if key.Recipients, err = report.ReadRecipients(b.RecipientKeyFile); err != nil {
		var rke *report.RecipientKeyError
		if errors.As(err, &rke) {
			err = rke.Err
		}
		return key, fmt.Errorf("backup.recipient_key_file %s: %w", b.RecipientKeyFile, err)
	}
	return key, nil
}

// checkBackup is the configuration check of an enabled backup section:
// its key can be read and used.
func checkBackup(c *config.Config) error {
	if !c.Backup.Enabled {
		return nil
	}
	_, err := backupKey(c.Backup)
	return err
}

// writeScheduledBackup writes the backup of now into the directory of b and
// prunes the older ones. It returns the archive's path and the archives
// deleted.
func writeScheduledBackup(ctx context.Context, app *App, b config.Backup, now time.Time, version string) (string, []string, error) {
	key, err := backupKey(b)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(b.Directory, 0o700); err != nil {
		return "", nil, fmt.Errorf("backup.directory: %w", err)
	}
	path := filepath.Join(b.Directory, "usagemeter-backup-"+now.UTC().Format(backupTimeLayout)+".pgp")
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", nil, err
	}
	_, err = Backup(ctx, app, f, key, version)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", nil, err
	}
	removed, err := pruneBackups(b, now, filepath.Base(path))
	return path, removed, err
}

// backupArchives lists the job's archives in dir, newest first, with their times.
func backupArchives(dir string) ([]string, map[string]time.Time, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	times := map[string]time.Time{}
	for _, e := range entries {
		m := backupArchive.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		t, err := time.Parse(backupTimeLayout, m[1])
		if err != nil {
			continue
		}
		names = append(names, e.Name())
		times[e.Name()] = t
	}
	slices.SortFunc(names, func(a, b string) int { return times[b].Compare(times[a]) })
	return names, times, nil
}

// pruneBackups deletes the job's archives beyond b.Keep (the newest kept)
// and older than b.RetentionDays, never keep (the one just written).
func pruneBackups(b config.Backup, now time.Time, keep string) ([]string, error) {
	names, times, err := backupArchives(b.Directory)
	if err != nil {
		return nil, err
	}
	var removed []string
	for i, n := range names {
		old := b.RetentionDays > 0 && now.Sub(times[n]) > time.Duration(b.RetentionDays)*24*time.Hour
		if n == keep || (i < b.Keep && !old) {
			continue
		}
		if err := os.Remove(filepath.Join(b.Directory, n)); err != nil {
			return removed, fmt.Errorf("deleting an old backup: %w", err)
		}
		removed = append(removed, n)
	}
	return removed, nil
}

// backupJob is the scheduled backup: an alert when it fails, resolved by
// the next archive written.
func (d *Daemon) backupJob(ctx context.Context) {
	b := d.app.Config.Backup
	path, removed, err := writeScheduledBackup(ctx, d.app, b, d.now(), d.version)
	if err != nil {
		var last time.Time
		if names, times, lerr := backupArchives(b.Directory); lerr == nil && len(names) > 0 {
			last = times[names[0]]
		}
		d.app.Log.Error("backup failed", "dir", b.Directory, "err", err)
		if aerr := d.engine.BackupFailed(ctx, b.Directory, last, err); aerr != nil {
			d.app.Log.Error("backup alert", "err", aerr)
		}
		return
	}
	d.app.Log.Info("backup written", "path", path, "deleted", len(removed))
	if err := d.engine.BackupWritten(ctx, path); err != nil {
		d.app.Log.Error("backup alert", "err", err)
	}
}
