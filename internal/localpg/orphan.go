package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pdeathsig is the signal the kernel sends the server when the process that
// started it ends: SIGINT, PostgreSQL's fast shutdown (open transactions
// are rolled back, a checkpoint is written; SIGTERM would wait for clients
// to disconnect, SIGQUIT would skip the checkpoint). A variable so that a
// test can start a server that outlives its parent, as before.
var pdeathsig = syscall.SIGINT

// ownerFile names the file in the cluster directory that holds the pid of
// the process that started the running server.
const ownerFile = "postmaster.owner"

// orphanStopWait is how long a left-over server gets for a fast shutdown
// before it is sent an immediate shutdown (SIGQUIT).
const orphanStopWait = 60 * time.Second

// writeOwner records this process as the one that started the server.
func (c *Cluster) writeOwner() error {
	return os.WriteFile(filepath.Join(c.opts.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// readPid reads the pid on the first line of a file in the cluster
// directory, 0 if there is none.
func (c *Cluster) readPid(name string) int {
	b, err := os.ReadFile(filepath.Join(c.opts.Dir, name))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// stopOrphan looks at the server postmaster.pid names. A server of this
// cluster that is running although the process that started it is gone (it
// was reparented) is stopped with a fast shutdown, and logged; one run by a
// live process that does not accept connections (a healthy one is shared,
// see shared.go) is an error naming it. A postmaster.pid naming a process
// that is gone, or that is not this cluster's server, is left to
// clearStalePid.
func (c *Cluster) stopOrphan(ctx context.Context) error {
	pid := c.readPid("postmaster.pid")
	if pid == 0 || !alive(pid) || !c.isPostmaster(pid) {
		return nil
	}
	parent := parentOf(pid)
	owner := c.readPid(ownerFile)
	switch {
	case parent == os.Getpid():
		return fmt.Errorf("postgres in %s: started by this process (pid %d) but it does not accept connections; see %s", c.opts.Dir, pid, filepath.Join(c.opts.Dir, "server.log"))
	case owner != 0 && parent == owner:
		return fmt.Errorf("postgres in %s is running (pid %d), started by process %d, but it does not accept connections; see %s", c.opts.Dir, pid, owner, filepath.Join(c.opts.Dir, "server.log"))
	case owner == 0 && parent != 1:
		return fmt.Errorf("postgres in %s is already running (pid %d, parent %d) and was not started by usagemeter: stop it first", c.opts.Dir, pid, parent)
	}
	// The process that started it is gone: its parent is now init or a
	// subreaper. Nobody uses it; stop it as our own Stop would.
	c.opts.Logger.Warn("stopping a PostgreSQL server left running by a process that is gone (fast shutdown)",
		"dir", c.opts.Dir, "pid", pid, "started_by", owner, "parent", parent)
	if err := stopPid(ctx, pid); err != nil {
		return fmt.Errorf("stopping the PostgreSQL server (pid %d) left running in %s: %w", pid, c.opts.Dir, err)
	}
	_ = os.Remove(filepath.Join(c.opts.Dir, ownerFile))
	c.opts.Logger.Info("stopped the left-over PostgreSQL server", "dir", c.opts.Dir, "pid", pid)
	return nil
}

// isPostmaster reports whether pid is a PostgreSQL server of this cluster:
// a postgres (or postmaster) program whose -D names the directory, or whose
// working directory is it.
func (c *Cluster) isPostmaster(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if base := filepath.Base(args[0]); base != "postgres" && base != "postmaster" {
		return false
	}
	dir, err := filepath.Abs(c.opts.Dir)
	if err != nil {
		return false
	}
	for i, a := range args {
		if a == "-D" && i+1 < len(args) && filepath.Clean(args[i+1]) == dir {
			return true
		}
		if d, ok := strings.CutPrefix(a, "-D"); ok && d != "" && filepath.Clean(d) == dir {
			return true
		}
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && filepath.Clean(cwd) == dir
}

// stopPid stops a server that is not our child: SIGINT (fast shutdown),
// then, after orphanStopWait, SIGQUIT (immediate shutdown), waiting for it
// to end each time.
func stopPid(ctx context.Context, pid int) error {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, orphanStopWait}, {syscall.SIGQUIT, 15 * time.Second}} {
		if err := syscall.Kill(pid, step.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("sending %v: %w", step.sig, err)
		}
		deadline := time.Now().Add(step.wait)
		for alive(pid) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !alive(pid) {
			return nil
		}
	}
	return errors.New("it did not stop after SIGINT and SIGQUIT")
}

// alive reports whether process pid exists and has not ended (a zombie
// waiting for its parent has ended).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _ := procStat(pid)
	return state != "" && state != "Z" && state != "X"
}

// parentOf is the parent pid of pid, 0 if unknown.
func parentOf(pid int) int {
	_, ppid := procStat(pid)
	return ppid
}

// procStat reads the state and parent pid of pid from /proc/<pid>/stat.
func procStat(pid int) (state string, ppid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}
