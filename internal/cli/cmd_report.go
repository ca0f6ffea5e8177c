package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

func init() {
	register(&command{name: "report generate", summary: "generate a month's report (--month YYYY-MM, default last month) [--out DIR] [--plain]", run: runReportGenerate})
	register(&command{name: "report send", summary: "generate a month's report if needed and deliver it on every channel", run: runReportSend})
	register(&command{name: "report list", summary: "list stored reports, versions and delivery status", run: runReportList})
	register(&command{name: "report verify", summary: "check a report bundle's signature and manifest (report verify FILE)", run: runReportVerify})
	register(&command{name: "report key", summary: "print the appliance's public signing key (for the aggregator)", run: runReportKey})
}

// splitArgs parses flags placed before and after positional arguments
// ("report verify FILE --key K" as well as "report verify --key K FILE").
func splitArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError(err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func openGenerator(ctx context.Context, e *Env, app *appliance.App) (*report.Generator, error) {
	g, err := report.NewFromConfig(ctx, app.Config, app.Store, app.Log)
	if err != nil {
		return nil, err
	}
	g.SetNow(e.Now)
	return g, nil
}

func monthFlag(e *Env, g *report.Generator, s string) (store.Month, error) {
	if s == "" {
		return report.PreviousMonth(e.Now(), g.Location()), nil
	}
	m, err := report.ParseMonth(s, g.Location())
	if err != nil {
		return m, usageError{"--month: " + err.Error()}
	}
	return m, nil
}

func runReportGenerate(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "report generate")
	month := fs.String("month", "", "month to report, YYYY-MM in report.timezone (default: last month)")
	out := fs.String("out", "", "also copy the bundle to this directory (offline delivery)")
	plain := fs.Bool("plain", false, "with --out: also write the unencrypted (anonymised) bundle")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *plain && *out == "" {
		return usagef("--plain needs --out DIR")
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	g, err := openGenerator(ctx, e, app)
	if err != nil {
		return err
	}
	m, err := monthFlag(e, g, *month)
	if err != nil {
		return err
	}
	if *out != "" && !*plain && !g.HasRecipients() {
		return report.ErrNoRecipients
	}
	res, err := g.Generate(ctx, m)
	detail := ""
	if res != nil {
		detail = fmt.Sprintf("version %d", res.Report.Version)
	}
	if err := audited(ctx, e, app, "report.generate", "month "+m.String(), detail, err); err != nil {
		return err
	}
	printReport(e, res)
	if *out == "" {
		return nil
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	copies := []string{}
	if g.HasRecipients() {
		copies = append(copies, res.Path)
	}
	if *plain {
		copies = append(copies, res.PlainPath)
	}
	for _, p := range copies {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(*out, filepath.Base(p))
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		fmt.Fprintf(e.Stdout, "written %s\n", dst)
	}
	return nil
}

func printReport(e *Env, res *report.Result) {
	state := "new version"
	if res.Unchanged {
		state = "unchanged since it was stored"
	}
	fmt.Fprintf(e.Stdout, "report %s version %d (%s)\n  bundle: %s\n", res.Manifest.Month, res.Report.Version, state, res.Path)
	if res.PlainPath != res.Path {
		fmt.Fprintf(e.Stdout, "  plain:  %s (kept on the appliance; `usagemeter anonymize reverse` reads it)\n", res.PlainPath)
	}
	fmt.Fprintf(e.Stdout, "  hours in month %d (%s), anonymisation %s, %d customers\n", res.Manifest.HoursInMonth, res.Manifest.TimeZone, res.Manifest.Anonymization, res.Manifest.Customers)
	for _, p := range res.Manifest.Products {
		if p.MissingHours > 0 {
			fmt.Fprintf(e.Stdout, "  %s %s: %d of %d hours not collected\n", p.Product, p.Host, p.MissingHours, p.ExpectedHours)
		}
	}
	if n := len(res.Manifest.Excluded); n > 0 {
		fmt.Fprintf(e.Stdout, "  %d figures not reported (perpetual, demo or evaluation licences): see manifest.json \"excluded\"\n", n)
	}
	printChannels(e, res.Report.Channels)
}

func printChannels(e *Env, ch map[string]store.ChannelStatus) {
	names := make([]string, 0, len(ch))
	for n := range ch {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := ch[n]
		state := c.State
		switch {
		case c.State == store.ChannelQueued && c.Error != "":
			state = "queued, not delivered yet"
		case c.State == store.ChannelFailed && c.OutboxID() != 0:
			state = "failed, refused by the mail server"
		}
		line := fmt.Sprintf("  %s: %s", n, state)
		if c.Detail != "" {
			line += " (" + c.Detail + ")"
		}
		if c.Error != "" {
			line += ": " + c.Error
		}
		fmt.Fprintln(e.Stdout, line)
	}
}

func runReportSend(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "report send")
	month := fs.String("month", "", "month to send, YYYY-MM in report.timezone (default: last month)")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	g, err := openGenerator(ctx, e, app)
	if err != nil {
		return err
	}
	if len(g.Channels()) == 0 {
		return errors.New("no delivery channel configured: set report.to (e-mail) or report.upload_url, or use `report generate --out DIR`")
	}
	m, err := monthFlag(e, g, *month)
	if err != nil {
		return err
	}
	res, err := g.Send(ctx, m)
	_ = audited(ctx, e, app, "report.send", "month "+m.String(), "", err)
	if res == nil {
		return err
	}
	// The report's mail goes out now, not at the daemon's next attempt:
	// the admin who runs report send (perhaps after fixing the smtp
	// section) learns at once whether it is delivered.
	var serr error
	if st := res.Report.Channels[report.ChannelEmail]; st.State == store.ChannelQueued && st.OutboxID() != 0 {
		serr = appliance.SendReportMailNow(ctx, app, st.OutboxID())
	}
	if rep, err2 := app.Store.ReportByID(ctx, res.Report.ID); err2 == nil {
		if rep, err2 = app.Store.FollowOutbox(ctx, rep); err2 == nil {
			res.Report = rep
		}
	}
	printReport(e, res)
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	var undelivered []string
	for _, name := range g.Channels() {
		if c := res.Report.Channels[name]; !c.Delivered() {
			undelivered = append(undelivered, name)
		}
	}
	if len(undelivered) > 0 {
		return fmt.Errorf("report %s version %d is not delivered by %s yet: it stays queued and the daemon keeps retrying (see above for why)",
			res.Manifest.Month, res.Report.Version, strings.Join(undelivered, ", "))
	}
	return nil
}

func runReportList(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "report list")
	asJSON := fs.Bool("json", false, "print JSON")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	reps, err := app.Store.Reports(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		type report struct {
			Month    string            `json:"month"`
			Version  int               `json:"version"`
			Created  time.Time         `json:"created"`
			Figures  string            `json:"figures_sha256"`
			Channels map[string]string `json:"channels"`
			Path     string            `json:"path"`
		}
		out := []report{}
		for _, r := range reps {
			ch := map[string]string{}
			for n, c := range r.Channels {
				ch[n] = appliance.OutboxState(ctx, app.Store, c)
			}
			out = append(out, report{r.Month.Format("2006-01"), r.Version, r.CreatedAt.UTC(), r.FiguresSHA256, ch, r.Path})
		}
		return writeJSON(e, out)
	}
	if len(reps) == 0 {
		fmt.Fprintln(e.Stdout, "no reports yet")
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MONTH\tVERSION\tCREATED\tFIGURES\tCHANNELS\tPATH")
	for _, r := range reps {
		var ch []string
		for n, c := range r.Channels {
			ch = append(ch, n+"="+appliance.OutboxState(ctx, app.Store, c))
		}
		sort.Strings(ch)
		if len(ch) == 0 {
			ch = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Month.Format("2006-01"), r.Version, r.CreatedAt.UTC().Format("2006-01-02 15:04Z"),
			r.FiguresSHA256[:min(12, len(r.FiguresSHA256))], strings.Join(ch, ","), r.Path)
	}
	return tw.Flush()
}

func readKeyFile(path string) (openpgp.EntityList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b)); err == nil {
		return el, nil
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not an OpenPGP key: %w", path, err)
	}
	return el, nil
}

func runReportVerify(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "report verify")
	key := fs.String("key", "", "a recipient's private key file, to decrypt an encrypted bundle")
	signer := fs.String("signer", "", "the appliance's public key file (default: this appliance's own key from the configuration)")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: usagemeter report verify FILE [--key PRIVATE_KEY] [--signer PUBLIC_KEY]")
	}
	var keyring, signers openpgp.EntityList
	if *key != "" {
		if keyring, err = readKeyFile(*key); err != nil {
			return fmt.Errorf("--key: %w", err)
		}
	}
	if *signer != "" {
		if signers, err = readKeyFile(*signer); err != nil {
			return fmt.Errorf("--signer: %w", err)
		}
	} else if *key != "" {
		cfg, err := appliance.LoadConfig(*cfgPath)
		if err != nil {
			return fmt.Errorf("%w (or give the appliance's public key with --signer)", err)
		}
		own, err := report.LoadOrCreateKey(report.SigningKeyPath(cfg), "usagemeter appliance", "usagemeter@appliance.invalid")
		if err != nil {
			return err
		}
		signers = openpgp.EntityList{own}
	}
	v, err := report.VerifyFile(pos[0], keyring, signers)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	m := v.Manifest
	fmt.Fprintf(e.Stdout, "%s: OK\n  month %s version %d, appliance %s, contract %s (%s)\n  %d files match the manifest, figures %s\n",
		pos[0], m.Month, m.Version, m.ApplianceID, m.ContractID, m.Program, len(m.Files), m.FiguresSHA256)
	if v.Encrypted {
		fmt.Fprintf(e.Stdout, "  decrypted; signed by %s\n", v.Signer)
	} else {
		fmt.Fprintln(e.Stdout, "  plain bundle: no signature to check (the encrypted one carries it)")
	}
	return nil
}

func runReportKey(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "report key")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	k, err := report.LoadSigningKey(ctx, app.Config, app.Store)
	if err != nil {
		return err
	}
	pub, err := report.ExportPublic(k)
	if err != nil {
		return err
	}
	_, err = e.Stdout.Write(pub)
	return err
}
