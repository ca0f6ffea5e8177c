// Command usagemeter is the metering appliance's daemon and admin tool. All
// of it lives in internal/cli; main only wires signals and the exit status.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/usagemeter/usagemeter/internal/cli"
	"github.com/usagemeter/usagemeter/internal/web/console"
)

// exitBrokenPipe is the status of a command whose output was closed early
// (`usagemeter ... | head -1`): the shell's status for a program ended by
// SIGPIPE, but reached by an orderly exit that stopped what the command
// had started (the managed PostgreSQL above all).
const exitBrokenPipe = 128 + int(syscall.SIGPIPE)

func main() {
	cli.Console = console.New // serve and the demo mount the web console at /
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(ctx)
	// Asked for, SIGPIPE no longer kills the process on a write to a closed
	// stdout: the write fails with EPIPE and stdout below ends the command.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	go func() {
		for range sigpipe {
		}
	}()
	out := &pipeWatch{w: os.Stdout, cancel: cancel}
	code := cli.Run(ctx, os.Args, out, os.Stderr)
	cancel(nil)
	stop()
	if out.broken() {
		code = exitBrokenPipe
	}
	os.Exit(code)
}

// pipeWatch is stdout that cancels the command when its reader has gone.
type pipeWatch struct {
	w      io.Writer
	cancel context.CancelCauseFunc
	once   sync.Once
	closed bool
	mu     sync.Mutex
}

func (p *pipeWatch) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.once.Do(func() { p.cancel(err) })
	}
	return n, err
}

func (p *pipeWatch) broken() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
