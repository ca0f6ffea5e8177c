package cli

import (
	"context"

	"github.com/usagemeter/usagemeter/internal/appliance"
)

func init() {
	register(&command{name: "serve", summary: "run the daemon (scheduler, outbox, HTTP)", run: runServe})
}

// runServe runs the daemon: appliance.Serve with the configuration named
// by --config.
func runServe(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "serve")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return appliance.Serve(ctx, cfg, e.Stderr, Version)
}
