// Package cli implements the usagemeter command line: the subcommands of
// DESIGN.md, their flags and their output. The runtime they drive (open,
// daemon, serve) is internal/appliance. Each subcommand lives in its own
// cmd_*.go file and registers itself.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/usagemeter/usagemeter/internal/appliance"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// Env is what a subcommand runs with.
type Env struct {
	Stdout, Stderr io.Writer
	Now            func() time.Time
	flags          *flag.FlagSet // the last FlagSet the command made (completion, man pages)
}

// command is one subcommand. Its name may contain a space ("config check").
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *Env, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("cli: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usageError is an error in the command line itself (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Run runs the command line args (args[0] is the program name) and returns
// the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &Env{Stdout: stdout, Stderr: stderr, Now: time.Now}
	rest := args[1:]
	if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" {
		printUsage(stdout)
		return 0
	}
	// The flags of every command are read for completion and man pages only.
	withFlags := rest[0] == "completion" || rest[0] == "man" || strings.HasPrefix(rest[0], cobra.ShellCompRequestCmd)
	root := newRoot(e, withFlags)
	root.SetArgs(rest)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(context.Cause(ctx), syscall.EPIPE) {
		return 1 // stdout's reader has gone (| head): nothing to tell it
	}
	var re runError
	if !errors.As(err, &re) {
		// cobra's: an unknown command or a group without its command.
		msg := err.Error()
		if i := strings.Index(msg, " for \"usagemeter"); strings.HasPrefix(msg, "unknown command") && i > 0 {
			msg = fmt.Sprintf("unknown command %q", strings.Join(rest[:min(2, len(rest))], " "))
		}
		fmt.Fprintf(stderr, "usagemeter: %s\n\n", msg)
		printUsage(stderr)
		return 2
	}
	err = re.err
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// runError is the error of a command's run (as opposed to cobra's own).
type runError struct{ err error }

func (r runError) Error() string { return r.err.Error() }
func (r runError) Unwrap() error { return r.err }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usagemeter: metering appliance for VMware cloud providers")
	fmt.Fprintln(w, "\nUsage: usagemeter COMMAND [flags]  (usagemeter COMMAND -h for its flags; exit status 0 done, 1 failed, 2 bad command line)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	summaries := map[string]string{}
	for _, c := range cobraCommands {
		names, summaries[c[0]] = append(names, c[0]), c[1]
	}
	sort.Strings(names)
	for _, n := range names {
		if c, ok := commands[n]; ok {
			summaries[n] = c.summary
		}
		fmt.Fprintf(w, "  %-22s %s\n", n, summaries[n])
	}
}

// newFlags makes a FlagSet for a command, with --config.
func newFlags(e *Env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("usagemeter "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	e.flags = fs
	cfg := fs.String("config", defaultConfigPath(), "configuration file")
	return fs, cfg
}

func defaultConfigPath() string {
	if p := os.Getenv("USAGEMETER_CONFIG"); p != "" {
		return p
	}
	return "/etc/usagemeter/config.yaml"
}

// flagError is the error of a failed flag parse: -h and --help are not an
// error (they print the flags and exit 0), anything else is a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseAndOpen parses a command's flags, then opens the appliance with the
// configuration named by --config: the preamble of most subcommands.
func parseAndOpen(ctx context.Context, e *Env, fs *flag.FlagSet, cfgPath *string, args []string) (*appliance.App, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return appliance.Open(ctx, *cfgPath, e.Stderr)
}

// writeJSON prints v as indented JSON (the --json of list commands).
func writeJSON(e *Env, v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
