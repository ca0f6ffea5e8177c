package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

func init() {
	register(&command{name: "license list", summary: "list licence keys seen and their category", run: runLicenseList})
	register(&command{name: "license set", summary: "set a licence key's category (--key K --category rental|perpetual|demo)", run: runLicenseSet})
	register(&command{name: "license set-category", summary: "set a licence key's category (license set-category KEY rental|perpetual|demo)", run: runLicenseSetCategory})
}

// runLicenseSetCategory is `license set` with positional arguments.
func runLicenseSetCategory(ctx context.Context, e *Env, args []string) error {
	fs, _ := newFlags(e, "license set-category")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() < 2 {
		return usagef("usage: license set-category KEY rental|perpetual|demo")
	}
	key, category := fs.Arg(0), fs.Arg(1)
	if err := fs.Parse(fs.Args()[2:]); err != nil { // flags may follow the arguments
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	rest := []string{"--key", key, "--category", category}
	if f := fs.Lookup("config"); f.Value.String() != f.DefValue {
		rest = append(rest, "--config", f.Value.String())
	}
	return runLicenseSet(ctx, e, rest)
}

func runLicenseList(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "license list")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	// Keys seen by collectors in the last 400 days (a year of reports can
	// still be regenerated) join the list as rental.
	if _, err := app.Store.SyncLicenses(ctx, e.Now().AddDate(0, 0, -400)); err != nil {
		return err
	}
	ls, err := app.Store.Licenses(ctx)
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		fmt.Fprintln(e.Stdout, "no licence keys recorded")
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tEDITION\tCATEGORY")
	for _, l := range ls {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Key, l.Edition, l.Category)
	}
	return tw.Flush()
}

func runLicenseSet(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "license set")
	key := fs.String("key", "", "licence key")
	category := fs.String("category", "", "rental (reported), perpetual or demo (metered, not reported)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *category {
	case store.LicenseRental, store.LicensePerpetual, store.LicenseDemo:
	default:
		return usagef("--category must be rental, perpetual or demo (got %q)", *category)
	}
	if *key == "" {
		return usagef("--key is required")
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.Store.SetLicenseCategory(ctx, *key, *category); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "licence %s: %s\n", *key, *category)
	return nil
}
