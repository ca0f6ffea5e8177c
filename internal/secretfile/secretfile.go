// Package secretfile creates the appliance's key files (credentials key,
// anonymisation secret, signing key): mode 0600, written in full before they
// appear, and never replacing a file that exists.
package secretfile

import (
	"os"
	"path/filepath"
)

// CreateExclusive writes data to a temporary file next to path, with mode
// 0600, and links it to path. The link fails with fs.ErrExist if path
// exists, so an existing file is never replaced and a crash never leaves a
// half-written file at path.
func CreateExclusive(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path)
}
