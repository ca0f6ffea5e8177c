package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// cobraCommands are the commands cobra adds to the registered ones, for
// the usage listing.
var cobraCommands = [][2]string{
	{"completion", "print the shell completion script (completion bash|zsh|fish|powershell; see completion SHELL -h)"},
	{"man", "write the man pages, one per command (--dir DIR, default .)"},
}

// The command tree is spf13/cobra's, built from the registered commands:
// cobra dispatches, and gives shell completion (`usagemeter completion
// bash|zsh|fish|powershell`) and man pages (`usagemeter man --dir DIR`).
// Each command keeps parsing its own flags with the standard flag package
// (cobra passes its arguments as they are: DisableFlagParsing), so that
// `-h`/`--help` print the command's flags and exit 0 as before; the flags
// are read once from each command's FlagSet for completion and the man
// pages.

// newRoot builds the cobra tree of the registered commands, running them
// with e. With withFlags, each command's flags are declared to cobra (for
// completion and man pages; not needed to run a command).
func newRoot(e *Env, withFlags bool) *cobra.Command {
	root := &cobra.Command{
		Use:           "usagemeter",
		Short:         "metering appliance for VMware cloud providers",
		Long:          "usagemeter: metering appliance for VMware cloud providers. Exit status: 0 done, 1 failed, 2 bad command line.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          func(*cobra.Command, []string) error { printUsage(e.Stdout); return nil },
	}
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetHelpCommand(&cobra.Command{Use: "help [COMMAND]", Short: "help about a command", Hidden: true,
		RunE: func(cc *cobra.Command, args []string) error {
			if len(args) == 0 {
				printUsage(e.Stdout)
				return nil
			}
			c, _, err := root.Find(args)
			if err != nil || c == root {
				return usagef("unknown command %q", strings.Join(args, " "))
			}
			return c.Help()
		}})
	groups := map[string]*cobra.Command{}
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		c := commands[n]
		words := strings.Fields(n)
		parent := root
		if len(words) == 2 {
			g, ok := groups[words[0]]
			if !ok {
				g = &cobra.Command{Use: words[0], Short: words[0] + " commands (usagemeter " + words[0] + " COMMAND -h)", Args: cobra.NoArgs,
					RunE: func(cc *cobra.Command, args []string) error { return cc.Help() }}
				groups[words[0]] = g
				root.AddCommand(g)
			}
			parent = g
		}
		leaf := &cobra.Command{
			Use:                words[len(words)-1],
			Short:              c.summary,
			DisableFlagParsing: true,
			RunE: func(cc *cobra.Command, args []string) error {
				if err := c.run(cc.Context(), e, args); err != nil {
					return runError{err}
				}
				return nil
			},
		}
		if withFlags {
			if fs := flagsOf(c); fs != nil {
				leaf.Flags().AddGoFlagSet(fs) // cobra completes them, and lists them in the man page
			}
		}
		parent.AddCommand(leaf)
	}
	man := &cobra.Command{
		Use:   "man",
		Short: cobraCommands[1][1],
		Args:  cobra.NoArgs,
		RunE: func(cc *cobra.Command, args []string) error {
			dir, _ := cc.Flags().GetString("dir")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := doc.GenManTree(root, &doc.GenManHeader{Title: "USAGEMETER", Section: "1", Source: "usagemeter " + Version, Date: &date}, dir); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "man pages written to %s\n", dir)
			return nil
		},
	}
	man.Flags().String("dir", ".", "directory to write the man pages into")
	root.AddCommand(man)
	return root
}

// flagsOf is the FlagSet command c parses: c is run with -h, which every
// command answers by printing its flags (here to nowhere) before doing
// anything else.
func flagsOf(c *command) *flag.FlagSet {
	e := &Env{Stdout: io.Discard, Stderr: io.Discard, Now: time.Now}
	_ = c.run(context.Background(), e, []string{"-h"})
	if e.flags != nil {
		e.flags.SetOutput(io.Discard)
	}
	return e.flags
}
