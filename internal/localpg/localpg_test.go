package localpg

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The environment of the helper daemon (TestHelperDaemon run in a child
// process, as os/exec's own tests do).
const (
	envHelperDir      = "LOCALPG_HELPER_DIR"
	envHelperNoSignal = "LOCALPG_HELPER_NO_PDEATHSIG"
)

// TestHelperDaemon is not a test: run by startDaemon in a child process, it
// plays a daemon that starts the managed PostgreSQL, holds a connection and
// waits to be killed.
func TestHelperDaemon(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("helper process only")
	}
	if os.Getenv(envHelperNoSignal) != "" {
		pdeathsig = 0 // as before the fix
	}
	ctx := context.Background()
	c, err := New(Options{Dir: dir, Fast: true})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := c.Start(ctx); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	fmt.Println("postmaster", c.cmd.Process.Pid)
	time.Sleep(5 * time.Minute)
	os.Exit(2)
}

// startDaemon runs TestHelperDaemon in a child process on dir and returns
// it with the pid of the postmaster it started.
func startDaemon(t *testing.T, dir string, withSignal bool) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDaemon$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelperDir+"="+dir)
	if !withSignal {
		cmd.Env = append(cmd.Env, envHelperNoSignal+"=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "postmaster ") || strings.HasPrefix(l, "error ") {
				lines <- l
				return
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		pid, err := strconv.Atoi(strings.TrimPrefix(l, "postmaster "))
		if !ok || err != nil {
			t.Fatalf("helper daemon: %q", l)
		}
		return cmd, pid
	case <-time.After(2 * time.Minute):
		t.Fatal("helper daemon did not start PostgreSQL within 2 minutes")
	}
	return nil, 0
}

// kill9 kills the helper daemon as kill -9 does, and reaps it.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// waitGone waits up to d for process pid to end.
func waitGone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return true
		}
	}
	return !alive(pid)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgain is the restarted daemon: a new Cluster on dir must start.
func startAgain(t *testing.T, dir string) (*Cluster, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	c, err := New(Options{Dir: dir, Fast: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("restart after kill -9: %v\nlog: %s", err, logs.String())
	}
	t.Cleanup(func() { _ = c.Stop() })
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	_ = conn.Close(ctx)
	return c, &logs
}

func requireServerBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
}

// A daemon killed with kill -9 takes its postmaster with it (the parent-death
// signal), and the next start succeeds.
func TestKilledDaemonStopsPostmaster(t *testing.T) {
	requireServerBinaries(t)
	dir := filepath.Join(t.TempDir(), "pg")
	cmd, pid := startDaemon(t, dir, true)
	kill9(t, cmd)
	if !waitGone(pid, time.Minute) {
		t.Fatalf("postmaster %d still running a minute after its daemon was killed with kill -9", pid)
	}
	_, logs := startAgain(t, dir)
	if strings.Contains(logs.String(), "left running") {
		t.Errorf("the postmaster had to be stopped by the next start:\n%s", logs.String())
	}
}

// A postmaster that outlived its daemon anyway (started without the signal,
// as before the fix or by an older version) is stopped by the next start,
// which says so and then succeeds. While its daemon runs, a second start
// shares it and leaves it running.
func TestOrphanedPostmasterStoppedAtStart(t *testing.T) {
	requireServerBinaries(t)
	dir := filepath.Join(t.TempDir(), "pg")
	cmd, pid := startDaemon(t, dir, false)

	c, err := New(Options{Dir: dir, Fast: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil || c.Shared() != pid {
		t.Fatalf("start while the daemon runs: %v, shared pid %d, want %d", err, c.Shared(), pid)
	}
	if err := c.Stop(); err != nil || !alive(pid) {
		t.Fatalf("stopping a shared server: %v; the daemon's postmaster alive: %v", err, alive(pid))
	}

	kill9(t, cmd)
	time.Sleep(200 * time.Millisecond)
	if !alive(pid) {
		t.Fatalf("postmaster %d ended with its daemon although started without the parent-death signal", pid)
	}
	_, logs := startAgain(t, dir)
	if !waitGone(pid, time.Second) {
		t.Fatalf("orphaned postmaster %d still running after the new start", pid)
	}
	for _, want := range []string{"stopping a PostgreSQL server left running by a process that is gone", "pid=" + strconv.Itoa(pid), "stopped the left-over PostgreSQL server"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// The parent-death signal follows the thread that forked, not the process
// (golang/go issue 27505): children started by goroutines whose threads
// then end (locked, they exit) must live on. Without startLocked most of
// them die with those threads.
func TestStartLockedOutlivesTheCallingThread(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	const n = 4
	type started struct {
		cmd    *exec.Cmd
		exited <-chan struct{}
		err    error
	}
	done := make(chan started)
	for range n {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			cmd := exec.Command(sleep, "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
			exited, err := startLocked(cmd)
			done <- started{cmd, exited, err}
		}()
	}
	var cmds []started
	for range n {
		s := <-done
		if s.err != nil {
			t.Fatal(s.err)
		}
		cmds = append(cmds, s)
		t.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.exited })
	}
	time.Sleep(time.Second) // the threads end after their goroutines
	for _, s := range cmds {
		if !alive(s.cmd.Process.Pid) {
			t.Errorf("child %d ended with the thread that started it", s.cmd.Process.Pid)
		}
	}
}

// A command run while the daemon runs uses the daemon's server: it starts
// no second postmaster, its queries reach the same cluster, its Stop leaves
// the server to the daemon, and it sees the server end with the daemon.
// (Before: "lock file postmaster.pid already exists", or a second
// postmaster that talked to the daemon's socket by accident.)
func TestCommandSharesTheDaemonsServer(t *testing.T) {
	requireServerBinaries(t)
	dir := filepath.Join(t.TempDir(), "pg")
	daemon, pid := startDaemon(t, dir, true)
	ctx := context.Background()
	for i := range 3 {
		c, err := New(Options{Dir: dir, Fast: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if c.Shared() != pid || c.cmd != nil {
			t.Fatalf("command %d: shared pid %d, own server %v; want the daemon's %d", i, c.Shared(), c.cmd != nil, pid)
		}
		conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var serverPid int
		if err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").Scan(&serverPid); err != nil {
			t.Fatal(err)
		}
		if parentOf(serverPid) != pid {
			t.Fatalf("command %d reached a server process %d whose postmaster is %d, not the daemon's %d", i, serverPid, parentOf(serverPid), pid)
		}
		conn.Close(ctx)
		if err := c.Stop(); err != nil || !alive(pid) {
			t.Fatalf("command %d: stop %v; daemon's postmaster alive %v", i, err, alive(pid))
		}
	}
	c, err := New(Options{Dir: dir, Fast: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	kill9(t, daemon)
	select {
	case <-c.Exited():
	case <-time.After(time.Minute):
		t.Fatal("a command using the daemon's server did not see it end with the daemon")
	}
	_ = c.Stop()
}

// Commands started at the same moment on a cluster nobody runs: one starts
// the server, the others wait for it and share it; no start fails.
func TestSimultaneousStartsShareOneServer(t *testing.T) {
	requireServerBinaries(t)
	dir := filepath.Join(t.TempDir(), "pg")
	const n = 4
	cs := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c, err := New(Options{Dir: dir, Fast: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
		wg.Go(func() { errs[i] = c.Start(context.Background()) })
	}
	wg.Wait()
	var owner *Cluster
	for i, c := range cs {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if c.cmd != nil {
			if owner != nil {
				t.Fatal("two starts launched a postmaster")
			}
			owner = c
		}
	}
	if owner == nil {
		t.Fatal("no start launched the postmaster")
	}
	for i, c := range cs {
		if c != owner && c.Shared() != owner.cmd.Process.Pid {
			t.Errorf("start %d shares %d, want %d", i, c.Shared(), owner.cmd.Process.Pid)
		}
	}
	for _, c := range cs {
		if c != owner {
			_ = c.Stop()
		}
	}
	if err := owner.Stop(); err != nil {
		t.Fatal(err)
	}
}
