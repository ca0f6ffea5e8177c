package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

func init() {
	register(&command{name: "status", summary: "is the month reportable: registration, keys, delivery, SMTP, products, clock; each product's last hour; open alerts", run: runStatus})
	register(&command{name: "alerts list", summary: "open alerts (--all: the history too) [--json]", run: runAlertsList})
}

// errNotReady makes `status` exit 1 when a check fails, for scripts.
var errNotReady = fmt.Errorf("the appliance is not ready to report the month (see above)")

func runStatus(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "status")
	asJSON := fs.Bool("json", false, "print JSON")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	now := e.Now()
	checks := appliance.Readiness(ctx, app, now)
	ps, err := app.Store.Products(ctx, false)
	if err != nil {
		return err
	}
	last, err := app.Store.LastCollected(ctx)
	if err != nil {
		return err
	}
	alerts, err := app.Store.OpenAlerts(ctx)
	if err != nil {
		return err
	}
	schema, err := app.Store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	failing := false
	for _, c := range checks {
		failing = failing || c.Level == appliance.Failing
	}
	if *asJSON {
		type product struct {
			ID       int64      `json:"id"`
			Kind     string     `json:"kind"`
			Endpoint string     `json:"endpoint"`
			Active   bool       `json:"active"`
			LastHour *time.Time `json:"last_collected_hour"`
		}
		out := struct {
			Version  string            `json:"version"`
			Schema   int32             `json:"schema"`
			Ready    bool              `json:"ready"`
			Checks   []appliance.Check `json:"checks"`
			Products []product         `json:"products"`
			Alerts   []store.Alert     `json:"open_alerts"`
		}{Version: Version, Schema: schema, Ready: !failing, Checks: checks, Alerts: alerts}
		for _, p := range ps {
			pr := product{ID: p.ID, Kind: p.Kind, Endpoint: p.Endpoint, Active: p.Active}
			if h, ok := last[p.ID]; ok {
				pr.LastHour = &h
			}
			out.Products = append(out.Products, pr)
		}
		if err := writeJSON(e, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.Stdout, "usagemeter %s, database schema %d (this binary: %d)\n\n", Version, schema, migrations.Latest())
		fmt.Fprintln(e.Stdout, "Monthly report readiness:")
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		for _, c := range checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Level, c.Name, c.Detail)
			if c.Action != "" {
				fmt.Fprintf(tw, "  \t\t-> %s\n", c.Action)
			}
		}
		tw.Flush()
		fmt.Fprintln(e.Stdout, "\nProducts:")
		tw = tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tKIND\tENDPOINT\tSTATE\tLAST COLLECTED HOUR (UTC)")
		for _, p := range ps {
			state, hour := "active", "never"
			if !p.Active {
				state = "deactivated"
			}
			if h, ok := last[p.ID]; ok {
				hour = h.UTC().Format("2006-01-02 15:04")
				if age := now.Sub(h); age > 2*time.Hour {
					hour += fmt.Sprintf(" (%d hours ago)", int(age.Hours()))
				}
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", p.ID, p.Kind, p.Endpoint, state, hour)
		}
		if len(ps) == 0 {
			fmt.Fprintln(tw, "  (none)")
		}
		tw.Flush()
		fmt.Fprintf(e.Stdout, "\nOpen alerts: %d\n", len(alerts))
		printAlerts(e, alerts)
	}
	if failing {
		return errNotReady
	}
	return nil
}

func printAlerts(e *Env, alerts []store.Alert) {
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	for _, a := range alerts {
		state := "open"
		if a.ResolvedAt != nil {
			state = "resolved " + a.ResolvedAt.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "  %s\t%s\tsince %s\t%s\t%s\n", a.Key, a.Kind, a.OpenedAt.UTC().Format("2006-01-02 15:04"), state, firstLine(a.LastError))
	}
	tw.Flush()
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

func runAlertsList(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "alerts list")
	all := fs.Bool("all", false, "the resolved alerts too (newest first, last 500)")
	asJSON := fs.Bool("json", false, "print JSON")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	var alerts []store.Alert
	if *all {
		alerts, err = app.Store.Alerts(ctx, 500)
	} else {
		alerts, err = app.Store.OpenAlerts(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if alerts == nil {
			alerts = []store.Alert{}
		}
		return writeJSON(e, alerts)
	}
	if len(alerts) == 0 {
		fmt.Fprintln(e.Stdout, "no alerts")
		return nil
	}
	printAlerts(e, alerts)
	return nil
}
