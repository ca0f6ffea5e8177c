// Command usagemeter-firstboot configures the appliance from its OVF
// environment on the first boot (see package firstboot). It is installed as
// /usr/lib/usagemeter/firstboot and run by usagemeter-firstboot.service.
//
//	usagemeter-firstboot [--force] [--env ovf-env.xml] [--root DIR]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"

	"github.com/usagemeter/usagemeter/deploy/ova/firstboot"
)

func main() {
	force := flag.Bool("force", false, "run even if first boot is already done")
	env := flag.String("env", "", "read the OVF environment from this file instead of VMware Tools or a CD")
	root := flag.String("root", "", "prefix for every path written (testing)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sources := []firstboot.Source{firstboot.GuestInfoSource{}, firstboot.ISOSource{}}
	if *env != "" {
		sources = []firstboot.Source{firstboot.FileSource(*env)}
	}
	err := firstboot.Run(ctx, firstboot.Options{Root: *root, Sources: sources, Force: *force, Console: os.Stdout}, osSystem{})
	switch {
	case errors.Is(err, firstboot.ErrDone):
		return
	case err != nil:
		os.Exit(1)
	}
}

// osSystem runs commands for real. Their output goes to our stderr (the
// journal and the console); their arguments never hold a secret.
type osSystem struct{}

func (osSystem) Run(ctx context.Context, stdin []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (osSystem) Chown(path, owner, group string) error {
	u, err := user.Lookup(owner)
	if err != nil {
		return err
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return os.Chown(path, uid, gid)
}
