package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

func init() {
	register(&command{name: "license list", summary: "list licence keys seen and their category", run: runLicenseList})
	register(&command{name: "license set", summary: "set a licence key's category from this hour (--key K --category rental|perpetual|demo|evaluation [--from HOUR])", run: runLicenseSet})
	register(&command{name: "license set-category", summary: "set a licence key's category from this hour (license set-category KEY rental|perpetual|demo|evaluation [--from HOUR])", run: runLicenseSetCategory})
}

// runLicenseSetCategory is `license set` with positional arguments.
func runLicenseSetCategory(ctx context.Context, e *Env, args []string) error {
	fs, _ := newFlags(e, "license set-category")
	from := fs.String("from", "", "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() < 2 {
		return usagef("usage: license set-category KEY rental|perpetual|demo|evaluation [--from HOUR]")
	}
	key, category := fs.Arg(0), fs.Arg(1)
	if err := fs.Parse(fs.Args()[2:]); err != nil { // flags may follow the arguments
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	rest := []string{"--key", key, "--category", category}
	if *from != "" {
		rest = append(rest, "--from", *from)
	}
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
	category := fs.String("category", "", "rental (reported), perpetual, demo or evaluation (metered, not reported)")
	fromFlag := fs.String("from", "", "the hour the category applies from (RFC 3339, e.g. 2026-03-15T10:00:00Z); default the current hour. Hours before it keep their category")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *category {
	case store.LicenseRental, store.LicensePerpetual, store.LicenseDemo, store.LicenseEvaluation:
	default:
		return usagef("--category must be %s (got %q)", strings.Join(store.LicenseCategories, ", "), *category)
	}
	if *key == "" {
		return usagef("--key is required")
	}
	app, from, now, err := openForChange(ctx, e, *cfgPath, *fromFlag)
	if err != nil {
		return err
	}
	defer app.Close()
	err = app.Store.ChangeLicenseCategory(ctx, *key, *category, from, now)
	if err := audited(ctx, e, app, "license.set_category", "licence "+*key, "category "+*category, err); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "licence %s: %s from %s (hours before keep their category)\n", *key, *category, from.Format(time.RFC3339))
	return nil
}

// openForChange reads the --from of an admin change and opens the
// appliance to record it.
func openForChange(ctx context.Context, e *Env, cfgPath, fromFlag string) (app *appliance.App, from, now time.Time, err error) {
	now = e.Now()
	if from, err = changeFrom(fromFlag, now); err != nil {
		return nil, from, now, err
	}
	app, err = appliance.Open(ctx, cfgPath, e.Stderr)
	return app, from, now, err
}

// changeFrom reads the --from of an admin change: the current hour when
// empty, else an RFC 3339 instant not in the future (truncated to its hour).
func changeFrom(s string, now time.Time) (time.Time, error) {
	cur := now.UTC().Truncate(time.Hour)
	if s == "" {
		return cur, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--from %q: want an RFC 3339 time such as %s", s, cur.Format(time.RFC3339))
	}
	if t = t.UTC().Truncate(time.Hour); t.After(cur) {
		return time.Time{}, usagef("--from %s is in the future: a change applies from the current hour (%s) or an earlier one", t.Format(time.RFC3339), cur.Format(time.RFC3339))
	}
	return t, nil
}
