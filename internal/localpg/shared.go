package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// One server, whoever starts it. Every usagemeter process that needs the
// managed database (the daemon, each CLI command) calls Start; the first
// starts the server and owns it (it dies with that process), every later
// one finds it running and attaches: it uses the socket and never starts or
// stops anything. The decision is taken under an exclusive lock on a file
// beside the cluster directory, so two commands started at once cannot both
// launch a postmaster (PostgreSQL would refuse the second with "lock file
// postmaster.pid already exists") or talk to a half-started one.

// lockPath is the start lock of the cluster: beside its directory, not in
// it (initdb wants an empty directory).
func (c *Cluster) lockPath() string {
	dir := filepath.Clean(c.opts.Dir)
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".start.lock")
}

// lockStart takes the start lock, waiting for another process's start to
// finish (or ctx); the returned function releases it.
func (c *Cluster) lockStart(ctx context.Context) (func(), error) {
	path := c.lockPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the start lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another usagemeter process to start PostgreSQL in %s: %w", c.opts.Dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// attachable returns the pid of a server of this cluster that a live
// usagemeter process started (or this one) and that accepts connections,
// 0 if there is none to share.
func (c *Cluster) attachable(ctx context.Context) int {
	pid := c.readPid("postmaster.pid")
	if pid == 0 || !alive(pid) || !c.isPostmaster(pid) {
		return 0
	}
	parent, owner := parentOf(pid), c.readPid(ownerFile)
	if parent != os.Getpid() && (owner == 0 || parent != owner || !alive(owner)) {
		return 0 // left over or not ours: stopOrphan decides
	}
	if !c.ready(ctx) {
		return 0
	}
	return pid
}

// attach makes c a user of the running server pid: Exited is closed when
// that server ends, Stop leaves it running.
func (c *Cluster) attach(pid int) {
	exited := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(exited)
		for alive(pid) {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	c.shared = &sharedServer{pid: pid, stop: stop}
	c.exited = exited
}

// sharedServer is a server another process started, that c uses.
type sharedServer struct {
	pid  int
	stop chan struct{}
}

// Shared returns the pid of the server c uses when another process started
// it (and owns it), 0 when c started its own or is not running.
func (c *Cluster) Shared() int {
	if c.shared == nil {
		return 0
	}
	return c.shared.pid
}

// detach ends the use of a shared server; it keeps running.
func (c *Cluster) detach() {
	close(c.shared.stop)
	c.shared = nil
}

// Running reports whether a server of this cluster runs that Start would
// attach to (a live usagemeter process started it, or this one, and it
// accepts connections). It starts and stops nothing.
func (c *Cluster) Running(ctx context.Context) bool { return c.attachable(ctx) != 0 }
