package ova

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Manifest returns the SHA-256 manifest (.mf) of the named files, one
// "SHA256(name)= hex" line each, in the given order.
func Manifest(files []string, sums map[string]string) []byte {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "SHA256(%s)= %s\n", f, sums[f])
	}
	return []byte(b.String())
}

func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Pack writes the OVA at out: a tar holding name.ovf first, then name.mf (the
// SHA-256 manifest of the descriptor and every disk), then the disk files
// (paths on this machine; stored under their base names). mtime stamps every
// entry, so the same inputs give the same OVA.
func Pack(out, name string, descriptor []byte, disks []string, mtime time.Time) error {
	ovfName, mfName := name+".ovf", name+".mf"
	d := sha256.Sum256(descriptor)
	sums := map[string]string{ovfName: hex.EncodeToString(d[:])}
	order := []string{ovfName}
	sizes := map[string]int64{}
	for _, p := range disks {
		sum, n, err := sha256File(p)
		if err != nil {
			return fmt.Errorf("packing %s: %w", out, err)
		}
		base := filepath.Base(p)
		sums[base], sizes[base] = sum, n
		order = append(order, base)
	}
	mf := Manifest(order, sums)

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("packing %s: %w", out, err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	tw := tar.NewWriter(f)
	hdr := func(n string, size int64) *tar.Header {
		return &tar.Header{Name: n, Size: size, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR, Uname: "root", Gname: "root"}
	}
	for _, e := range []struct {
		name string
		b    []byte
	}{{ovfName, descriptor}, {mfName, mf}} {
		if err := tw.WriteHeader(hdr(e.name, int64(len(e.b)))); err != nil {
			return fmt.Errorf("packing %s: %w", out, err)
		}
		if _, err := tw.Write(e.b); err != nil {
			return fmt.Errorf("packing %s: %w", out, err)
		}
	}
	for _, p := range disks {
		base := filepath.Base(p)
		if err := tw.WriteHeader(hdr(base, sizes[base])); err != nil {
			return fmt.Errorf("packing %s: %w", out, err)
		}
		src, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("packing %s: %w", out, err)
		}
		n, err := io.Copy(tw, src)
		src.Close()
		if err != nil {
			return fmt.Errorf("packing %s: %s: %w", out, p, err)
		}
		if n != sizes[base] {
			return fmt.Errorf("packing %s: %s changed while packing", out, p)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("packing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("packing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// Build writes the descriptor for the streamOptimized VMDK at vmdkPath and
// packs both into the OVA at out. capacity is the disk's virtual size in bytes.
func Build(out, name, version, vmdkPath string, capacity int64, mtime time.Time) ([]byte, error) {
	st, err := os.Stat(vmdkPath)
	if err != nil {
		return nil, err
	}
	desc, err := Descriptor(Params{Name: name, Version: version, Disk: Disk{File: filepath.Base(vmdkPath), Size: st.Size(), Capacity: capacity}})
	if err != nil {
		return nil, err
	}
	return desc, Pack(out, name, desc, []string{vmdkPath}, mtime)
}

// VMDKCapacity reads the virtual capacity in bytes from the sparse extent
// header of a (streamOptimized) VMDK.
func VMDKCapacity(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("%s: reading VMDK header: %w", path, err)
	}
	if string(h[:4]) != "KDMV" {
		return 0, fmt.Errorf("%s: not a sparse VMDK (no KDMV magic)", path)
	}
	sectors := uint64(h[12]) | uint64(h[13])<<8 | uint64(h[14])<<16 | uint64(h[15])<<24 |
		uint64(h[16])<<32 | uint64(h[17])<<40 | uint64(h[18])<<48 | uint64(h[19])<<56
	return int64(sectors) * 512, nil
}
