// Package localpg runs a PostgreSQL server from the system's binaries as a
// child process: the managed database used when database.url is empty, and
// the throw-away server of internal/pgtest. It runs initdb on first use,
// starts the server on a unix socket only, stops it cleanly, and reuses an
// existing cluster. When the process is root, the server runs as the
// `postgres` OS user (PostgreSQL refuses to run as root).
//
// The server cannot outlive the process that started it: it is started with
// a parent-death signal (SIGINT, PostgreSQL's fast shutdown), so a daemon
// killed with kill -9 takes its postmaster down with it. As a second line, a
// postmaster found running on the cluster at Start whose starting process is
// gone (one left by an older version, or started with the signal lost) is
// stopped with a fast shutdown, and logged, before a new one starts; a
// postmaster.pid whose process is gone is removed.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries is returned when initdb/postgres cannot be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql) or set database.url to an existing server")

// Options shape a cluster.
type Options struct {
	Dir      string       // cluster directory (PGDATA); the socket lives in Dir/socket
	BinDir   string       // where initdb and postgres are; "" = search
	Fast     bool         // fsync off etc., for tests only
	Settings []string     // extra "name=value" server settings
	Log      io.Writer    // the server's own output, besides Dir/server.log
	Logger   *slog.Logger // what localpg does (nil: slog.Default())
}

// Cluster is one PostgreSQL data directory and, once started, its server.
type Cluster struct {
	opts   Options
	bin    string
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited <-chan struct{}
	logf   *os.File
	shared *sharedServer // set when the server is another process's
}

// FindBinDir locates the directory holding initdb and postgres.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// New prepares a cluster; nothing runs until Start.
func New(opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("localpg: no directory")
	}
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cluster{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no 'postgres' OS user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return c, nil
}

// SocketDir is where the server's unix socket is.
func (c *Cluster) SocketDir() string { return filepath.Join(c.opts.Dir, "socket") }

// ConnString returns a libpq keyword/value connection string for dbname.
func (c *Cluster) ConnString(dbname string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", c.SocketDir(), dbname)
}

// URL returns the connection as a postgres:// URL.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", dbname, c.SocketDir())
}

// Initialized reports whether the directory already holds a cluster.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.opts.Dir, "PG_VERSION"))
	return err == nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Dir = "/"
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// prepareDir makes Dir (and the socket dir) exist and belong to the server's user.
func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(c.SocketDir(), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", c.opts.Dir, err)
	}
	for _, d := range []string{c.opts.Dir, c.SocketDir()} {
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
		if c.cred != nil {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("giving %s to the postgres user: %w", d, err)
			}
		}
	}
	if c.cred != nil {
		// The postgres user must be able to reach Dir: let it traverse (not list) the parents we own.
		for p := filepath.Dir(c.opts.Dir); p != "/" && p != "."; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
					return fmt.Errorf("letting the postgres user reach %s: %w", c.opts.Dir, err)
				}
			}
		}
	}
	return nil
}

// Init runs initdb when the directory holds no cluster yet.
func (c *Cluster) Init(ctx context.Context) error {
	if c.Initialized() {
		return nil
	}
	if err := c.prepareDir(); err != nil {
		return err
	}
	args := []string{"-D", c.opts.Dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"}
	if c.opts.Fast {
		args = append(args, "--no-sync")
	}
	// initdb refuses a non-empty directory; remove the (empty) socket dir for the run.
	_ = os.Remove(c.SocketDir())
	var out bytes.Buffer
	cmd := c.command(ctx, "initdb", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb in %s: %w: %s", c.opts.Dir, err, strings.TrimSpace(out.String()))
	}
	return c.prepareDir()
}

// Start launches the server and waits until it accepts connections; when
// another usagemeter process already runs it (see shared.go), Start uses
// that one instead (Shared reports its pid) and starts nothing.
func (c *Cluster) Start(ctx context.Context) error {
	if c.cmd != nil || c.shared != nil {
		return fmt.Errorf("postgres in %s: already started", c.opts.Dir)
	}
	unlock, err := c.lockStart(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.Init(ctx); err != nil {
		return err
	}
	if err := c.prepareDir(); err != nil {
		return err
	}
	if pid := c.attachable(ctx); pid != 0 {
		c.attach(pid)
		c.opts.Logger.Debug("using the PostgreSQL server another usagemeter process runs", "dir", c.opts.Dir, "pid", pid)
		return nil
	}
	if err := c.stopOrphan(ctx); err != nil {
		return err
	}
	c.clearStalePid()
	args := []string{"-D", c.opts.Dir, "-k", c.SocketDir(), "-c", "listen_addresses=", "-c", "port=5432"}
	if c.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	}
	for _, s := range c.opts.Settings {
		args = append(args, "-c", s)
	}
	cmd := c.command(context.Background(), "postgres", args...)
	logPath := filepath.Join(c.opts.Dir, "server.log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", logPath, err)
	}
	if c.cred != nil {
		_ = lf.Chown(int(c.cred.Uid), int(c.cred.Gid))
	}
	c.logf = lf
	var w io.Writer = lf
	if c.opts.Log != nil {
		w = io.MultiWriter(lf, c.opts.Log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group: a Ctrl-C to the daemon is handled by the daemon, which then stops the server.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// The server dies with us (kill -9 included): the kernel sends it
	// SIGINT, a fast shutdown, when this process ends. Go applies it after
	// the switch to the postgres user (a credential change clears it), and
	// postgres is not set-user-ID, so exec keeps it.
	cmd.SysProcAttr.Pdeathsig = pdeathsig
	exited, err := startLocked(cmd)
	if err != nil {
		lf.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	if err := c.writeOwner(); err != nil {
		c.opts.Logger.Warn("cannot record the process that runs PostgreSQL", "dir", c.opts.Dir, "err", err)
	}
	c.cmd = cmd
	c.exited = exited

	deadline := time.Now().Add(60 * time.Second)
	sock := filepath.Join(c.SocketDir(), ".s.PGSQL.5432")
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up; see %s: %s", logPath, tail(logPath))
		case <-ctx.Done():
			_ = c.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(sock); err == nil && c.ready(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			_ = c.Stop()
			return fmt.Errorf("postgres did not accept connections within 60s; see %s", logPath)
		}
	}
}

// startLocked starts cmd from a goroutine locked to its OS thread until cmd
// has ended, and returns a channel closed then. The parent-death signal is
// sent when the thread that forked ends, not only the process, and the Go
// runtime ends a thread whose goroutine exits while locked to it (golang/go
// issue 27505); a locked thread runs no other goroutine, so none can end it
// under the server.
func startLocked(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// ready reports whether the server accepts a connection (not merely its socket).
func (c *Cluster) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

// clearStalePid removes a postmaster.pid left by a crash whose process is
// gone (or is another program now: pids are reused after a reboot).
func (c *Cluster) clearStalePid() {
	pid := c.readPid("postmaster.pid")
	if pid == 0 {
		return
	}
	if alive(pid) && c.isPostmaster(pid) {
		return // still running: postgres itself will refuse with a clear message
	}
	if os.Remove(filepath.Join(c.opts.Dir, "postmaster.pid")) == nil {
		c.opts.Logger.Info("removed a stale postmaster.pid (its process is gone)", "dir", c.opts.Dir, "pid", pid)
	}
}

// Stop shuts the server down with a fast shutdown (SIGINT) and waits; a
// shared server (one another process started) is left running.
func (c *Cluster) Stop() error {
	if c.shared != nil {
		c.detach()
		return nil
	}
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	defer func() {
		if c.logf != nil {
			c.logf.Close()
		}
		c.cmd = nil
		_ = os.Remove(filepath.Join(c.opts.Dir, ownerFile))
	}()
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("postgres did not stop within 30s; killed")
	}
}

// Exited is closed when the server process ends.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
