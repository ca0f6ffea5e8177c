package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/store"
)

func init() {
	register(&command{name: "collect", summary: "collect now (all active products, or one), recorded as this hour, or --hour H --backfill for an uncollected earlier hour", run: runCollect})
}

func runCollect(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "collect")
	productID := fs.Int64("product", 0, "collect only this product (also a deactivated one)")
	hourFlag := fs.String("hour", "", "record the collection as this hour (RFC3339, UTC); default: the current hour. An earlier hour needs --backfill")
	backfill := fs.Bool("backfill", false, "with --hour: record today's state as an earlier hour nobody collected, in a month not reported yet; the hour is marked backfilled in the journal and the report's manifest")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	current := e.Now().UTC().Truncate(time.Hour)
	hour := current
	if *hourFlag != "" {
		h, err := time.Parse(time.RFC3339, *hourFlag)
		if err != nil {
			return usagef("--hour: want RFC3339, e.g. 2026-05-01T13:00:00Z: %v", err)
		}
		hour = h.UTC().Truncate(time.Hour)
		if hour.After(e.Now()) {
			return usagef("--hour %s is in the future", hour.Format(time.RFC3339))
		}
	}
	if *backfill && hour.Equal(current) {
		return usagef("--backfill is for an earlier hour: %s is the current hour, collect it without --backfill", hour.Format(time.RFC3339))
	}
	if !hour.Equal(current) && !*backfill {
		return usagef("--hour %s is not the current hour (%s): a collection reads the products' state now, so it would record today's state as that hour. "+
			"To fill an hour nobody collected, in a month not reported yet, add --backfill (the hour is marked backfilled in the journal and the report)",
			hour.Format(time.RFC3339), current.Format(time.RFC3339))
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	if *backfill {
		m := store.MonthIn(hour, app.Config.Location())
		switch rep, err := app.Store.LatestReport(ctx, m.Start); {
		case err == nil:
			return fmt.Errorf("--backfill %s: %s was reported already (version %d): a backfilled hour would change a report that was sent. "+
				"Leave the hour as a gap (the report counts it), or, if the figures must change, backfill before the monthly report runs",
				hour.Format(time.RFC3339), m, rep.Version)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	d, err := appliance.NewDaemon(app, nil, nil)
	if err != nil {
		return err
	}
	defer d.Scheduler().Stop(time.Second)

	var products []store.Product
	if *productID != 0 {
		p, err := app.Store.Product(ctx, *productID)
		if err != nil {
			return err
		}
		products = []store.Product{p}
	} else {
		products, err = app.Store.ProductsDue(ctx, hour)
		if err != nil {
			return err
		}
		if len(products) == 0 {
			active, err := app.Store.Products(ctx, true)
			if err != nil {
				return err
			}
			if len(active) > 0 {
				// Only products collected less often than hourly (Horizon
				// DaaS: 00, 06, 12, 18 UTC), none of them due now.
				return fmt.Errorf("no product is due at %s (products collected every few hours are due at UTC hours that are multiples of their cadence): name one with --product ID to collect it now",
					hour.UTC().Format(time.RFC3339))
			}
			return fmt.Errorf("no active products: add one with `usagemeter product add`")
		}
	}
	failed, busy := 0, 0
	for _, p := range products {
		r := d.Scheduler().CollectProduct(ctx, p, hour)
		printResult(e, r)
		if r.Err != nil {
			failed++
		}
		if *backfill && r.Err == nil && r.Skipped == "" {
			if _, err := app.Store.MarkBackfilled(ctx, p.ID, hour); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "  recorded as backfilled: the state read at %s, not in the hour itself\n", e.Now().UTC().Format(time.RFC3339))
		}
		if r.Skipped == "leased" {
			busy++
		}
	}
	// Deliver the alert mails this run may have queued.
	d.RunOutbox(ctx)
	switch {
	case failed > 0 && busy > 0:
		return fmt.Errorf("%d of %d products failed, %d are being collected by another daemon", failed, len(products), busy)
	case failed > 0:
		return fmt.Errorf("%d of %d products failed", failed, len(products))
	case busy > 0:
		// Nothing was collected by this command: say so with the exit status.
		return fmt.Errorf("%d of %d products are being collected by another daemon; try again after its lease", busy, len(products))
	}
	return nil
}

func printResult(e *Env, r scheduler.Result) {
	fmt.Fprintf(e.Stdout, "product %d (%s %s), hour %s: ", r.Product.ID, r.Product.Kind, r.Product.Endpoint, r.Hour.Format(time.RFC3339))
	switch {
	case r.Skipped == "committed":
		fmt.Fprintln(e.Stdout, "already collected (an hour is stored once)")
		return
	case r.Skipped != "":
		until := "its lease runs out"
		if r.Until != nil {
			until = r.Until.UTC().Format(time.RFC3339)
		}
		who := ""
		if r.LeasedBy != "" {
			who = " (" + r.LeasedBy + ")"
		}
		fmt.Fprintf(e.Stdout, "being collected by another daemon until %s%s; if that daemon died, the hour is collected again once the lease has run out\n", until, who)
		return
	case r.Err != nil:
		fmt.Fprintf(e.Stdout, "FAILED after %d attempts: %v\n", r.Attempts, r.Err)
		return
	}
	fmt.Fprintf(e.Stdout, "%d objects in %s (%d spans extended, %d new)\n", r.Merge.Observations, r.Duration.Round(time.Millisecond), r.Merge.Extended, r.Merge.Inserted)
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	metrics := make([]string, 0, len(r.Objects))
	for m := range r.Objects {
		metrics = append(metrics, m)
	}
	sort.Strings(metrics)
	for _, m := range metrics {
		fmt.Fprintf(tw, "  %s\t%d\n", m, r.Objects[m])
	}
	_ = tw.Flush()
	if gb, ok := r.Totals[collectors.MetricVMVRAM]; ok {
		fmt.Fprintf(e.Stdout, "  total capped billed vRAM: %.1f GB\n", gb/1024)
	}
}
