// Package secretfile creates the appliance's key files (credentials key,
// anonymisation secret, signing key): mode 0600, written in full before they
// appear, and never replacing a file that exists.
package secretfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// CreateExclusive writes data to a temporary file next to path, with mode
// 0600, and links it to path. The link fails with fs.ErrExist if path
// exists, so an existing file is never replaced and a crash never leaves a
// half-written file at path.
func CreateExclusive(path string, data []byte) error {
	return WriteExclusive(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteExclusive is CreateExclusive for a file written by write (a stream
// too large to hold in memory): write fills the temporary file, which is
// linked to path only when write returned nil.
func WriteExclusive(path string, write func(io.Writer) error) error {
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
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
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
