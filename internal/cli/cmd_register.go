package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/usagemeter/usagemeter/internal/appliance"
)

func init() {
	register(&command{name: "register", summary: "record the provider's contract and programme (--contract ID --program rental|sovereign-cloud)", run: runRegister})
}

func runRegister(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "register")
	contract := fs.String("contract", "", "the provider's contract id with the aggregator")
	program := fs.String("program", "", "licence programme: rental or sovereign-cloud")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	*contract = strings.TrimSpace(*contract)
	switch {
	case *contract == "":
		return usagef("--contract is required")
	case *program != "rental" && *program != "sovereign-cloud":
		return usagef("--program must be rental or sovereign-cloud (got %q)", *program)
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	err = app.Store.Register(ctx, *contract, *program, e.Now())
	if err := audited(ctx, e, app, "appliance.register", "contract "+*contract, "programme "+*program, err); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "appliance %s registered: contract %s, programme %s\n", app.Appliance.ID, *contract, *program)
	return nil
}
