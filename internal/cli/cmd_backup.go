package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/usagemeter/usagemeter/internal/appliance"
)

func init() {
	register(&command{name: "backup", summary: "write one encrypted archive of the database and the key files (--out FILE, --passphrase-file F or --recipient KEY)", run: runBackup})
	register(&command{name: "restore", summary: "restore a backup onto a fresh appliance (restore FILE, --passphrase-file F or --key PRIVATE_KEY) [--force]", run: runRestore})
}

// readPassphrase reads a passphrase file's first line (12 characters or more).
func readPassphrase(path string) ([]byte, error) {
	p, err := appliance.ReadPassphraseFile(path)
	if errors.Is(err, appliance.ErrShortPassphrase) {
		return nil, usagef("--passphrase-file: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file: %w", err)
	}
	return p, nil
}

func runBackup(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "backup")
	out := fs.String("out", "", "the archive to write (OpenPGP-encrypted)")
	passFile := fs.String("passphrase-file", "", "file whose first line is the passphrase (gpg -c compatible)")
	recipient := fs.String("recipient", "", "OpenPGP public key file to encrypt to (instead of a passphrase)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || (*passFile == "") == (*recipient == "") {
		return usagef("want --out FILE and one of --passphrase-file or --recipient (a backup holds the appliance's keys: it is never written in clear)")
	}
	var key appliance.BackupKey
	var err error
	if *passFile != "" {
		if key.Passphrase, err = readPassphrase(*passFile); err != nil {
			return err
		}
	} else if key.Recipients, err = readKeyFile(*recipient); err != nil {
		return err
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	man, err := appliance.Backup(ctx, app, f, key, Version)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(e.Stdout, "backup of appliance %s (schema %d) written to %s: the database and %d key files, encrypted\n", man.Appliance, man.Schema, abs, len(man.Files)-1)
	return nil
}

func runRestore(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "restore")
	passFile := fs.String("passphrase-file", "", "file whose first line is the backup's passphrase")
	keyFile := fs.String("key", "", "OpenPGP private key file that decrypts the backup")
	force := fs.Bool("force", false, "replace an appliance that already has products or usage")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*passFile == "") == (*keyFile == "") {
		return usagef("usage: usagemeter restore FILE (--passphrase-file F | --key PRIVATE_KEY) [--force]")
	}
	var key appliance.BackupKey
	if *passFile != "" {
		if key.Passphrase, err = readPassphrase(*passFile); err != nil {
			return err
		}
	} else if key.Keyring, err = readKeyFile(*keyFile); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	man, err := appliance.Restore(ctx, cfg, f, key, e.Stderr, *force)
	if errors.Is(err, appliance.ErrNotEmpty) {
		return err
	}
	if err != nil {
		return fmt.Errorf("restoring %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.Stdout, "restored appliance %s from %s (written %s by usagemeter %s, schema %d): database and key files in place; start the daemon\n",
		man.Appliance, pos[0], man.Created.Format("2006-01-02 15:04Z"), man.Version, man.Schema)
	return nil
}
