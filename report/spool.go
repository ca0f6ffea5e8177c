package report

// A bundle being built keeps its large files (the history files, hourly
// totals) and the reverse map of the names it hashed on disk, in a private
// directory under the reports directory, so that the memory a report takes
// does not grow with the number of spans: each file is written once, row by
// row, and hashed as it is written; the tar.gz is then streamed from it.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/store"
)

// bundleFile is one data file of a bundle: held in memory (small files) or
// spooled to disk (path), with its size and SHA-256.
type bundleFile struct {
	name string
	data []byte
	path string
	size int64
	sum  string // hex SHA-256
	gz   string // path of the file and its tar padding as one gzip member (gzipSpool), or ""
}

func memFile(name string, data []byte) bundleFile {
	return bundleFile{name: name, data: data, size: int64(len(data)), sum: sha(data)}
}

func (f bundleFile) open() (io.ReadCloser, error) {
	if f.path == "" {
		return io.NopCloser(bytes.NewReader(f.data)), nil
	}
	return os.Open(f.path)
}

// spoolTSV writes the rows of one file to the spool, and hands them to its
// gzipSpool, which compresses and hashes them; rows are gathered in a small
// buffer first.
type spoolTSV struct {
	tsv
	name, path string
	f          *os.File
	gz         *gzipSpool // compresses and hashes
	size       int64
	err        error
}

const spoolChunk = 256 << 10

func newSpoolTSV(dir, name string) (*spoolTSV, error) {
	path := filepath.Join(dir, filepath.Base(name))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	gz, err := newGzipSpool(path + ".gz")
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &spoolTSV{name: name, path: path, f: f, gz: gz}
	s.Grow(spoolChunk + 4096)
	return s, nil
}

func (s *spoolTSV) row(fields ...string) {
	s.tsv.row(fields...)
	if s.Len() >= spoolChunk {
		s.flush()
	}
}

func (s *spoolTSV) flush() {
	if s.err == nil && s.Len() > 0 {
		s.gz.write(s.Bytes())
		var n int
		n, s.err = s.f.Write(s.Bytes())
		s.size += int64(n)
	}
	s.Reset()
}

// close ends the file; it is then a file of the bundle.
func (s *spoolTSV) close() (bundleFile, error) {
	s.flush()
	if err := s.f.Close(); s.err == nil {
		s.err = err
	}
	sum, err := s.gz.close(s.size)
	if s.err == nil {
		s.err = err
	}
	if s.err != nil {
		return bundleFile{}, fmt.Errorf("writing %s of the report: %w", s.name, s.err)
	}
	return bundleFile{name: s.name, path: s.path, size: s.size, sum: sum, gz: s.gz.path}, nil
}

// gzipSpool compresses and hashes (SHA-256) a spooled file while it is
// written, in a goroutine of its own (on another core than the rows'
// formatting, and while the database still sends them), into one gzip
// member: the file and the zeros that pad it to a tar block. writeTarGz
// then copies the member into the bundle as it is (a gzip file may hold
// several members, read as one stream), and a bundle's tar.gz costs little
// more than a copy.
type gzipSpool struct {
	path string
	in   chan []byte // chunks to compress
	free chan []byte // chunks compressed, to reuse
	done chan error
	pad  int64  // zeros after the file (set before in is closed)
	sum  string // hex SHA-256 of the file, once done
}

func newGzipSpool(path string) (*gzipSpool, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	g := &gzipSpool{path: path, in: make(chan []byte, 2), free: make(chan []byte, 3), done: make(chan error, 1)}
	for range cap(g.free) {
		g.free <- make([]byte, 0, spoolChunk+4096)
	}
	go func() {
		h := sha256.New()
		bw := bufio.NewWriterSize(f, 256<<10)
		zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
		for b := range g.in {
			if err == nil {
				_, err = zw.Write(b)
			}
			h.Write(b)
			g.free <- b[:0]
		}
		if err == nil {
			_, err = zw.Write(make([]byte, g.pad))
		}
		if err == nil {
			err = zw.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		g.sum = hex.EncodeToString(h.Sum(nil))
		g.done <- err
	}()
	return g, nil
}

// write hands a copy of p to the compressing goroutine.
func (g *gzipSpool) write(p []byte) {
	b := <-g.free
	g.in <- append(b, p...)
}

// close pads the file of size bytes to a tar block, waits for the member
// to be complete, and returns the file's SHA-256.
func (g *gzipSpool) close(size int64) (string, error) {
	g.pad = tarPad(size)
	close(g.in)
	err := <-g.done
	return g.sum, err
}

// tarPad is the number of zeros after a file of size bytes in a tar.
func tarPad(size int64) int64 { return -size & (tarBlock - 1) }

const tarBlock = 512

// namer anonymises names for one build with one HMAC (anonymize.Hasher).
// Names of placement (hosts, clusters, folders, customers...) repeat over
// hundreds of thousands of rows but are few: they are remembered in a map.
// Names of single objects (a VM's name and id) are as many as the objects;
// the rows of an object are consecutive, so the last one of each kind is
// remembered, and memory does not grow with them. Every name hashed is
// appended to the reverse-map spool (rev), which the generator stores.
type namer struct {
	h     *anonymize.Hasher
	cache map[string]string
	last  [len(objectKinds)][2]string // per object kind: (value, hash)
	rev   *revSpool                   // nil unless hashed
}

// objectKinds are the kinds of names of which there is one per object.
var objectKinds = [...]string{anonymize.KindVM, "vm_id", "object_id"}

func (n *namer) name(kind, v string) string {
	if v == "" {
		return ""
	}
	for i, k := range objectKinds {
		if k != kind {
			continue
		}
		if l := &n.last[i]; l[0] == v && l[1] != "" {
			return l[1]
		}
		h := n.h.Name(v)
		n.last[i] = [2]string{v, h}
		n.rev.add(kind, v, h)
		return h
	}
	if h, ok := n.cache[v]; ok {
		return h
	}
	h := n.h.Name(v)
	n.cache[v] = h
	n.rev.add(kind, v, h)
	return h
}

func (n *namer) customer(label string) string {
	if label == "" {
		return store.NoCustomer
	}
	return n.name(anonymize.KindCustomer, label)
}

// revSpool is the reverse map of a build, on disk: (hash, kind, value)
// records in the order the names were first hashed, each string prefixed
// by its length. A name may appear more than once (under two kinds, or a
// VM name shared by two VMs); the first record wins when it is stored, as
// in anonymize.Anonymizer.Map.
type revSpool struct {
	path string
	f    *os.File
	w    *bufio.Writer
	n    int
	err  error
	buf  []byte
}

func newRevSpool(dir string) (*revSpool, error) {
	path := filepath.Join(dir, "reverse-map")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &revSpool{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (r *revSpool) add(kind, value, hash string) {
	if r == nil || r.err != nil {
		return
	}
	r.buf = r.buf[:0]
	for _, s := range [3]string{hash, kind, value} {
		r.buf = binary.AppendUvarint(r.buf, uint64(len(s)))
		r.buf = append(r.buf, s...)
	}
	_, r.err = r.w.Write(r.buf)
	r.n++
}

func (r *revSpool) close() error {
	if r == nil {
		return nil
	}
	if err := r.w.Flush(); r.err == nil {
		r.err = err
	}
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	if r.err != nil {
		return fmt.Errorf("writing the reverse map of the report: %w", r.err)
	}
	return nil
}

// each calls fn with the records in batches of at most n.
func (r *revSpool) each(n int, fn func([]store.AnonEntry) error) error {
	if r == nil || r.n == 0 {
		return nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	readString := func() (string, error) {
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return "", err
		}
		b := make([]byte, l)
		_, err = io.ReadFull(br, b)
		return string(b), err
	}
	batch := make([]store.AnonEntry, 0, min(n, r.n))
	for i := 0; i < r.n; i++ {
		var e store.AnonEntry
		var err error
		if e.Hash, err = readString(); err == nil {
			if e.Kind, err = readString(); err == nil {
				e.Value, err = readString()
			}
		}
		if err != nil {
			return fmt.Errorf("reading the reverse map of the report: %w", err)
		}
		batch = append(batch, e)
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// hourNames formats hours in the report's time zone, remembering the
// month's few hundred hours.
type hourNames struct {
	loc   *time.Location
	cache map[int64]string
}

func (h *hourNames) name(t time.Time) string {
	k := t.Unix()
	if s, ok := h.cache[k]; ok {
		return s
	}
	s := t.In(h.loc).Format(time.RFC3339)
	h.cache[k] = s
	return s
}

// hoursText formats a whole number of hours.
func hoursText(h float64) string { return strconv.FormatFloat(h, 'f', 0, 64) }

// Close removes the files the bundle spooled to disk. A closed bundle
// cannot be written any more.
func (b *Bundle) Close() error {
	if b == nil || b.dir == "" {
		return nil
	}
	err := os.RemoveAll(b.dir)
	b.dir = ""
	if b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
	return err
}

// spoolPrefix names the work directories of builds.
const spoolPrefix = ".build-"

// staleAfter is how old a work directory nobody holds must be before it is
// removed: a build holds its directory's lock from just after creating it.
const staleAfter = time.Minute

// newSpoolDir makes the private directory of a build under dir, and holds
// it (a lock on the directory, released by Close or when the process
// ends). The directories of builds that ended without Close (a crash, a
// kill) are removed first.
func newSpoolDir(dir string) (string, *os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	RemoveStaleSpools(dir, time.Now())
	d, err := os.MkdirTemp(dir, spoolPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("creating the report's work directory: %w", err)
	}
	lock, ok, err := lockDir(d)
	if err == nil && !ok {
		err = errors.New("locked by another process")
	}
	if err != nil {
		_ = os.RemoveAll(d)
		return "", nil, fmt.Errorf("locking the report's work directory %s: %w", d, err)
	}
	return d, lock, nil
}

// lockDir takes the lock of directory d without waiting: ok is false when
// another build holds it.
func lockDir(d string) (_ *os.File, ok bool, _ error) {
	f, err := os.Open(d)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// RemoveStaleSpools removes the work directories under dir left by builds
// that did not end (a crash or kill during a build: the spooled history
// files and reverse map of a month), i.e. that no build holds and that were
// last written more than staleAfter before now. It returns the directories
// removed; what cannot be removed is left for the next time.
func RemoveStaleSpools(dir string, now time.Time) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), spoolPrefix) {
			continue
		}
		d := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleAfter {
			continue
		}
		lock, ok, err := lockDir(d)
		if err != nil || !ok {
			continue
		}
		err = os.RemoveAll(d)
		lock.Close()
		if err == nil {
			removed = append(removed, d)
		}
	}
	return removed
}

var errClosed = errors.New("report bundle already closed")

// data returns the contents of the bundle's file name, read from the spool
// when it was spooled; nil when the bundle has no such file.
func (b *Bundle) data(name string) ([]byte, error) {
	for _, f := range b.files {
		if f.name != name {
			continue
		}
		if f.path == "" {
			return f.data, nil
		}
		return os.ReadFile(f.path)
	}
	return nil, nil
}
