package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/report"
)

func init() {
	register(&command{name: "receiver serve", summary: "run the receiver: enrolment, signed uploads, heartbeats, merge, fleet API (config section receiver:)", run: runReceiverServe})
	register(&command{name: "receiver token", summary: "create: a one-time enrolment token for an appliance (--ttl, --note)", run: runReceiverToken})
	register(&command{name: "receiver appliances", summary: "list: the enrolled appliances (--json)", run: runReceiverAppliances})
	register(&command{name: "receiver revoke", summary: "refuse every later upload and heartbeat of an appliance: receiver revoke APPLIANCE-ID", run: runReceiverRevoke})
	register(&command{name: "receiver report", summary: "the merged provider report of a month across appliances (--month YYYY-MM, --json)", run: runReceiverReport})
	register(&command{name: "receiver admin", summary: "the fleet console's admin accounts: set-password USER (creates it if missing; --password-file, --password-stdin) | list (--json)", run: runReceiverAdmin})
	register(&command{name: "enrol", summary: "enrol this appliance with a receiver (--receiver URL --token T): signed uploads and an hourly heartbeat", run: runEnrol})
}

func runReceiverServe(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "receiver serve")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return receiver.Serve(ctx, cfg, Version, e.Stderr, nil)
}

// subcommand takes the verb a two-word command expects first ("create",
// "list").
// "-h" or "--help" in its place is passed on, for the flags to print the
// command's help.
func subcommand(args []string, verb string) ([]string, error) {
	if len(args) > 0 && isHelpFlag(args[0]) {
		return args, nil
	}
	if len(args) == 0 || args[0] != verb {
		return nil, usagef("expected %q", verb)
	}
	return args[1:], nil
}

// openReceiver parses the flags and opens the receiver of --config; check,
// if not nil, checks the flags first.
func openReceiver(ctx context.Context, e *Env, fs *flag.FlagSet, cfgPath *string, args []string, check func() error) (*receiver.Opened, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, err
		}
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return nil, err
	}
	return receiver.OpenConfig(ctx, cfg, e.Stderr, false)
}

// runReceiverAdmin is `usagemeter receiver admin set-password USER` and
// `receiver admin list`: the appliance's admin commands on the receiver's
// database (its console's accounts).
func runReceiverAdmin(ctx context.Context, e *Env, args []string) error {
	open := func(ctx context.Context, e *Env, cfgPath string) (*appliance.App, func(), error) {
		cfg, err := appliance.LoadConfig(cfgPath)
		if err != nil {
			return nil, nil, err
		}
		o, err := receiver.OpenConfig(ctx, cfg, e.Stderr, false)
		if err != nil {
			return nil, nil, err
		}
		return o.App, o.Close, nil
	}
	if len(args) > 0 && args[0] == "list" {
		return adminList(ctx, e, args[1:], "receiver admin", open)
	}
	args, err := subcommand(args, "set-password")
	if err != nil {
		return usagef("usage: usagemeter receiver admin set-password USER | list")
	}
	return adminSetPassword(ctx, e, args, "receiver admin", open)
}

func runReceiverToken(ctx context.Context, e *Env, args []string) error {
	args, err := subcommand(args, "create")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags(e, "receiver token create")
	ttl := fs.Duration("ttl", 0, "validity (default receiver.token_ttl, 168h)")
	note := fs.String("note", "", "what the token is for (kept in the audit)")
	o, err := openReceiver(ctx, e, fs, cfgPath, args, nil)
	if err != nil {
		return err
	}
	defer o.Close()
	d := *ttl
	if d == 0 {
		d = o.App.Config.Receiver.TokenTTL.D()
	}
	tok, exp, err := o.CreateToken(ctx, *note, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s\n\nValid once, until %s. On the appliance:\n  usagemeter enrol --receiver https://<this receiver's address>:<port> --token %s\nThe token pins this receiver's certificate (SHA-256 %s).\n",
		tok, exp.Format(time.RFC3339), tok, o.Thumbprint)
	return nil
}

func runReceiverAppliances(ctx context.Context, e *Env, args []string) error {
	args, err := subcommand(args, "list")
	if err != nil {
		return err
	}
	fs, cfgPath := newFlags(e, "receiver appliances list")
	asJSON := fs.Bool("json", false, "print JSON")
	o, err := openReceiver(ctx, e, fs, cfgPath, args, nil)
	if err != nil {
		return err
	}
	defer o.Close()
	apps, err := o.Appliances(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e, apps)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLIANCE\tVERSION\tENROLLED\tLAST HEARTBEAT\tSTATE")
	for _, a := range apps {
		hb, state := "never", "active"
		if a.LastHeartbeat != nil {
			hb = a.LastHeartbeat.Format(time.RFC3339)
		}
		if a.RevokedAt != nil {
			state = "revoked " + a.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Version, a.EnrolledAt.Format(time.RFC3339), hb, state)
	}
	return tw.Flush()
}

func runReceiverRevoke(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "receiver revoke")
	if len(args) > 0 && isHelpFlag(args[0]) {
		return parseFlags(fs, args)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usagef("usage: usagemeter receiver revoke APPLIANCE-ID [--config FILE]")
	}
	id := args[0]
	o, err := openReceiver(ctx, e, fs, cfgPath, args[1:], nil)
	if err != nil {
		return err
	}
	defer o.Close()
	if err := o.Revoke(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "appliance %s revoked: its uploads and heartbeats are refused from now on\n", id)
	return nil
}

func runReceiverReport(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "receiver report")
	month := fs.String("month", "", "the month, YYYY-MM")
	asJSON := fs.Bool("json", false, "print JSON instead of Provider_Monthly_Usage.tsv")
	if _, err := time.Parse("2006-01", *month); err != nil && len(args) == 0 {
		return usagef("--month YYYY-MM is required")
	}
	o, err := openReceiver(ctx, e, fs, cfgPath, args, nil)
	if err != nil {
		return err
	}
	defer o.Close()
	if _, err := time.Parse("2006-01", *month); err != nil {
		return usagef("--month %q: want YYYY-MM", *month)
	}
	if !*asJSON {
		_, err := o.WriteTSV(ctx, *month, e.Stdout)
		return err
	}
	m, err := o.Merge(ctx, *month)
	if err != nil {
		return err
	}
	return writeJSON(e, m)
}

func runEnrol(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "enrol")
	url := fs.String("receiver", "", "the receiver, https://host:port")
	token := fs.String("token", "", "the enrolment token `usagemeter receiver token create` printed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" || *token == "" {
		return usagef("--receiver and --token are required")
	}
	if _, err := protocol.ParseToken(*token); err != nil {
		return usagef("--token: %v", err)
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	signer, err := report.LoadSigningKey(ctx, app.Config, app.Store)
	if err != nil {
		return err
	}
	pub, err := report.ExportPublic(signer)
	if err != nil {
		return err
	}
	enr, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: app.Config.DataDir, URL: *url, Token: *token,
		ApplianceID: app.Appliance.ID, Version: Version, ReportKey: pub})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "appliance %s enrolled with receiver %s at %s (certificate SHA-256 %s pinned)\nMonthly reports are uploaded there signed (channel %q), with an hourly heartbeat from `usagemeter serve`.\n",
		app.Appliance.ID, enr.ReceiverID, enr.URL, enr.Thumbprint, report.ChannelReceiver)
	return nil
}

// isHelpFlag reports whether arg asks for a command's help.
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}
