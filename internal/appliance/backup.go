package appliance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/migrations"
	"github.com/usagemeter/usagemeter/report"
)

// A backup is one OpenPGP-encrypted tar archive: manifest.json, the
// database as a consistent pg_dump in custom format (database.dump), and
// the three key files that make its contents usable: the credentials key
// (the products' sealed passwords), the anonymisation secret (the same
// hashes in every report) and the appliance signing key (the aggregator
// knows it). It is never written in clear: it holds those keys. It is
// encrypted with a passphrase (gpg -c compatible) or to OpenPGP public keys.

// Archive member names.
const (
	backupManifest = "manifest.json"
	backupDump     = "database.dump"
	backupCreds    = "credentials.key"
	backupSecret   = "anonymization.key"
	backupSigning  = "appliance-signing.asc"
)

// BackupManifest describes a backup.
type BackupManifest struct {
	Created   time.Time         `json:"created"`
	Version   string            `json:"version"` // the usagemeter that wrote it
	Schema    int32             `json:"schema"`  // the database's migration version
	Appliance string            `json:"appliance"`
	Files     map[string]string `json:"files"` // member -> SHA-256
}

// BackupKey is what a backup is encrypted with: a passphrase, or OpenPGP
// public keys (then Keyring, the private keys, decrypts it).
type BackupKey struct {
	Passphrase []byte
	Recipients openpgp.EntityList
	Keyring    openpgp.EntityList
}

// keyFiles are the appliance's key files by archive member.
func keyFiles(cfg *config.Config) map[string]string {
	return map[string]string{
		backupCreds:   filepath.Join(cfg.DataDir, seal.KeyFileName),
		backupSecret:  report.SecretPath(cfg),
		backupSigning: report.SigningKeyPath(cfg),
	}
}

// databaseURL is the URL of the appliance's database.
func (a *App) databaseURL() string {
	if u := a.Config.Database.URL.Reveal(); u != "" {
		return u
	}
	return a.cluster.URL("usagemeter")
}

// pgTool is the path of a PostgreSQL client program (pg_dump, pg_restore).
func pgTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dir, err := localpg.FindBinDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// Backup writes an encrypted backup of app to w.
func Backup(ctx context.Context, app *App, w io.Writer, key BackupKey, version string) (BackupManifest, error) {
	man := BackupManifest{Created: time.Now().UTC(), Version: version, Appliance: app.Appliance.ID, Files: map[string]string{}}
	schema, err := app.Store.SchemaVersion(ctx)
	if err != nil {
		return man, err
	}
	man.Schema = schema
	if len(key.Passphrase) == 0 && len(key.Recipients) == 0 {
		return man, errors.New("a backup holds the appliance's keys: give a passphrase or a recipient's public key")
	}
	tmp, err := os.MkdirTemp(app.Config.DataDir, ".backup-")
	if err != nil {
		return man, err
	}
	defer os.RemoveAll(tmp)
	dump := filepath.Join(tmp, backupDump)
	pgDump, err := pgTool("pg_dump")
	if err != nil {
		return man, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pgDump, "--format=custom", "--no-owner", "--no-privileges", "--file="+dump, "--dbname="+app.databaseURL())
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return man, fmt.Errorf("pg_dump: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	members := map[string]string{backupDump: dump}
	for name, path := range keyFiles(app.Config) {
		if _, err := os.Stat(path); err == nil {
			members[name] = path
		}
	}
	for name, path := range members {
		sum, err := FileSHA256(path)
		if err != nil {
			return man, err
		}
		man.Files[name] = sum
	}

	pcfg := &packet.Config{DefaultCipher: packet.CipherAES256}
	var plain io.WriteCloser
	if len(key.Recipients) > 0 {
		plain, err = openpgp.Encrypt(w, key.Recipients, nil, &openpgp.FileHints{IsBinary: true}, pcfg)
	} else {
		plain, err = openpgp.SymmetricallyEncrypt(w, key.Passphrase, &openpgp.FileHints{IsBinary: true}, pcfg)
	}
	if err != nil {
		return man, err
	}
	tw := tar.NewWriter(plain)
	mb, _ := json.MarshalIndent(man, "", "  ")
	if err := tarBytes(tw, backupManifest, mb); err != nil {
		return man, err
	}
	for _, name := range []string{backupDump, backupCreds, backupSecret, backupSigning} {
		if path, ok := members[name]; ok {
			if err := tarFile(tw, name, path); err != nil {
				return man, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return man, err
	}
	return man, plain.Close()
}

// ErrNotEmpty is returned by Restore onto an appliance that has data.
var ErrNotEmpty = errors.New("this appliance already has products or usage: restore onto a fresh appliance (an empty database and data_dir), or pass --force to replace everything")

// Restore reads a backup from r onto the appliance of cfg: the database
// replaced by the backup's (then migrated forward if the backup is older),
// the key files written where cfg wants them. The appliance must be fresh
// (no product, no usage) unless force. It returns the backup's manifest.
func Restore(ctx context.Context, cfg *config.Config, r io.Reader, key BackupKey, stderr io.Writer, force bool) (BackupManifest, error) {
	var man BackupManifest
	if err := checkDataDir(cfg.DataDir); err != nil {
		return man, err
	}
	tried := false
	md, err := openpgp.ReadMessage(r, key.Keyring, func(keys []openpgp.Key, symmetric bool) ([]byte, error) {
		if !symmetric || len(key.Passphrase) == 0 || tried {
			return nil, errors.New("wrong passphrase or key")
		}
		tried = true
		return key.Passphrase, nil
	}, nil)
	if err != nil {
		return man, fmt.Errorf("decrypting the backup (wrong passphrase or key?): %w", err)
	}
	tmp, err := os.MkdirTemp(cfg.DataDir, ".restore-")
	if err != nil {
		return man, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	defer os.RemoveAll(tmp)
	tr := tar.NewReader(md.UnverifiedBody)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return man, fmt.Errorf("reading the backup (wrong passphrase, or not a usagemeter backup?): %w", err)
		}
		switch h.Name {
		case backupManifest:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return man, err
			}
			if err := json.Unmarshal(b, &man); err != nil {
				return man, fmt.Errorf("the backup's manifest: %w", err)
			}
		case backupDump, backupCreds, backupSecret, backupSigning:
			path := filepath.Join(tmp, h.Name)
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
			if err != nil {
				return man, err
			}
			hash := sha256.New()
			_, err = io.Copy(io.MultiWriter(f, hash), tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return man, fmt.Errorf("reading %s from the backup: %w", h.Name, err)
			}
			got[h.Name] = hex.EncodeToString(hash.Sum(nil))
		default:
			return man, fmt.Errorf("the backup holds an unexpected member %q: not a usagemeter backup", h.Name)
		}
	}
	if md.SignatureError != nil {
		return man, md.SignatureError
	}
	if man.Files == nil || man.Files[backupDump] == "" {
		return man, errors.New("the backup has no manifest or no database: not a usagemeter backup")
	}
	for name, sum := range man.Files {
		if got[name] != sum {
			return man, fmt.Errorf("the backup's %s does not match its manifest (damaged or altered)", name)
		}
	}
	if man.Schema > migrations.Latest() {
		return man, fmt.Errorf("the backup's database has schema %d, newer than this usagemeter's %d: restore it with that version or newer", man.Schema, migrations.Latest())
	}

	// The target: brought up (managed PostgreSQL started, schema created),
	// checked to be fresh, then replaced.
	app, err := openWithConfig(ctx, stderr, cfg, openOptions{})
	if err != nil {
		return man, err
	}
	var used bool
	err = app.Store.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM products) OR EXISTS (SELECT 1 FROM usage_spans)`).Scan(&used)
	if err == nil && used && !force {
		err = ErrNotEmpty
	}
	if err == nil {
		url := app.databaseURL()
		app.Store.Close()
		app.Store = nil
		err = pgRestore(ctx, url, filepath.Join(tmp, backupDump))
	}
	app.Close()
	if err != nil {
		return man, err
	}
	for name, path := range keyFiles(cfg) {
		if got[name] == "" {
			continue
		}
		if err := replaceFile(filepath.Join(tmp, name), path); err != nil {
			return man, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	// Open again: the schema migrated forward, the products readable with
	// the restored credentials key.
	app, err = openWithConfig(ctx, stderr, cfg, openOptions{})
	if err != nil {
		return man, err
	}
	defer app.Close()
	if _, err := app.Store.Products(ctx, false); err != nil {
		return man, fmt.Errorf("the restored products cannot be read with the restored key: %w", err)
	}
	return man, nil
}

// pgRestore replaces the database at url with the dump, in one
// transaction: the schema emptied, then the dump's objects created. The
// target is at this binary's schema and the dump may be older (a table
// since turned into a view, as usage_spans in migration 005), so the
// dump's own DROPs (pg_restore --clean) cannot be used: pg_restore writes
// the dump as SQL, which psql runs after dropping the public schema, and
// the transaction commits only if psql ran all of it and pg_restore ended
// well (a failed restore leaves the target as it was).
func pgRestore(ctx context.Context, url, dump string) error {
	restoreBin, err := pgTool("pg_restore")
	if err != nil {
		return err
	}
	psqlBin, err := pgTool("psql")
	if err != nil {
		return err
	}
	var restoreErr, psqlErr bytes.Buffer
	psql := exec.CommandContext(ctx, psqlBin, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--file=-", "--dbname="+url)
	psql.Stdout = io.Discard
	psql.Stderr = &psqlErr
	in, err := psql.StdinPipe()
	if err != nil {
		return err
	}
	if err := psql.Start(); err != nil {
		return fmt.Errorf("psql: %w", err)
	}
	_, _ = io.WriteString(in, "BEGIN;\nDROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
	restore := exec.CommandContext(ctx, restoreBin, "--no-owner", "--no-privileges", "--file=-", dump)
	restore.Stdout = in
	restore.Stderr = &restoreErr
	rerr := restore.Run()
	if rerr == nil {
		_, _ = io.WriteString(in, "COMMIT;\n")
	}
	in.Close()
	// Without COMMIT, psql ends at the end of its input and the
	// transaction is rolled back.
	if err := psql.Wait(); err != nil {
		return fmt.Errorf("restoring the database (psql): %w: %s", err, strings.TrimSpace(psqlErr.String()))
	}
	if rerr != nil {
		return fmt.Errorf("pg_restore: %w: %s", rerr, strings.TrimSpace(restoreErr.String()))
	}
	return nil
}

// replaceFile puts src's bytes at dst (0600), through a rename.
func replaceFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".restore"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// FileSHA256 is the hex SHA-256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tarBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func tarFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
