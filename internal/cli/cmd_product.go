package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"golang.org/x/term"
)

func init() {
	register(&command{name: "product add", summary: "register a product to meter", run: runProductAdd})
	register(&command{name: "product list", summary: "list registered products", run: runProductList})
	register(&command{name: "product remove", summary: "remove a product (its billed history is kept)", run: runProductRemove})
	register(&command{name: "product test", summary: "connect to a product: certificate, identity, login", run: runProductTest})
	register(&command{name: "product set-thumbprint", summary: "accept a product's new certificate thumbprint", run: runProductSetThumbprint})
	register(&command{name: "product set", summary: "change a product in place: address, credentials, certificate, options (product set ID [flags])", run: runProductSet})
	register(&command{name: "product deactivate", summary: "stop collecting from a product, keeping it (product deactivate ID)", run: runProductDeactivate})
	register(&command{name: "product reactivate", summary: "collect from a deactivated product again (product reactivate ID)", run: runProductReactivate})
}

// productFlags are the flags of product add and product test.
type productFlags struct {
	kind, endpoint, username, passwordFile, thumbprint string
	passwordStdin                                      bool
	vcfEdition, tanzuMetric                            string
	vcenter                                            int64
	options                                            string
}

func (pf *productFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.kind, "kind", "", "product kind: "+strings.Join(collectors.Kinds(), ", "))
	fs.StringVar(&pf.endpoint, "endpoint", "", "product URL, e.g. https://vc01.example.com")
	fs.StringVar(&pf.username, "username", "", "metering account")
	fs.StringVar(&pf.passwordFile, "password-file", "", "file holding the account's password (never pass it on the command line)")
	fs.BoolVar(&pf.passwordStdin, "password-stdin", false, "read the password from standard input")
	fs.StringVar(&pf.thumbprint, "accept-thumbprint", "", "SHA-256 thumbprint of a certificate the system does not trust (see product test)")
	fs.StringVar(&pf.vcfEdition, "vcf-edition", "", "vcenter: the VCF edition (standard, advanced, enterprise, with -vsan, or sddc-manager)")
	fs.StringVar(&pf.tanzuMetric, "tanzu-metric", "", "vcenter: Tanzu metered by vram or cores")
	fs.Int64Var(&pf.vcenter, "vcenter", 0, "id of the vCenter product this one is paired with")
	fs.StringVar(&pf.options, "options", "", "kind-specific options as JSON")
}

// password reads the password from --password-file or --password-stdin.
// A terminal on standard input is asked without echo. With neither flag,
// a terminal is asked too when a username is given; without a terminal
// that is an error (an account without a password is never stored by
// mistake). set is false when no password was given (product set: keep it).
func (pf *productFlags) password(stdin io.Reader, prompt io.Writer) (pw config.Secret, set bool, err error) {
	return readPassword(stdin, prompt, pf.passwordFile, pf.passwordStdin, pf.username != "", "Password for "+pf.username+": ")
}

// readPassword reads a password from file, or standard input (fromStdin),
// or, when ask and standard input is a terminal, asks with label without
// echo. set is false when none was given.
func readPassword(stdin io.Reader, prompt io.Writer, file string, fromStdin, ask bool, label string) (pw config.Secret, set bool, err error) {
	switch {
	case file != "" && fromStdin:
		return "", false, usagef("use --password-file or --password-stdin, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("--password-file: %w", err)
		}
		return config.Secret(strings.TrimRight(string(b), "\r\n")), true, nil
	case fromStdin || (ask && isTerminal(stdin)):
		if isTerminal(stdin) {
			fmt.Fprint(prompt, label)
			b, err := term.ReadPassword(int(stdin.(*os.File).Fd()))
			fmt.Fprintln(prompt)
			if err != nil {
				return "", false, fmt.Errorf("reading the password: %w", err)
			}
			return config.Secret(string(b)), true, nil
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, err
		}
		return config.Secret(strings.TrimRight(line, "\r\n")), true, nil
	}
	return "", false, nil
}

// isTerminal reports whether r is a terminal (a person types there).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// optionsJSON merges --options with the convenience flags.
func (pf *productFlags) optionsJSON() (json.RawMessage, error) {
	opts := map[string]any{}
	if pf.options != "" {
		if err := json.Unmarshal([]byte(pf.options), &opts); err != nil {
			return nil, usagef("--options: not a JSON object: %v", err)
		}
	}
	if pf.vcfEdition != "" {
		opts["vcf_edition"] = pf.vcfEdition
	}
	if pf.tanzuMetric != "" {
		opts["tanzu_metric"] = pf.tanzuMetric
	}
	b, err := json.Marshal(opts)
	return b, err
}

// product is the product the flags describe, password and options included.
func (pf *productFlags) product(stdin io.Reader, prompt io.Writer) (store.Product, error) {
	pw, set, err := pf.password(stdin, prompt)
	if err != nil {
		return store.Product{}, err
	}
	if pf.username != "" && !set {
		return store.Product{}, usagef("--username %s needs its password: --password-file FILE or --password-stdin (on a terminal you are asked for it)", pf.username)
	}
	opts, err := pf.optionsJSON()
	if err != nil {
		return store.Product{}, err
	}
	return store.Product{Kind: pf.kind, Endpoint: pf.endpoint, Username: pf.username, Password: pw,
		Thumbprint: tlsutil.Normalize(pf.thumbprint), Options: opts, PairedID: pf.vcenter}, nil
}

// stdin is where --password-stdin reads (tests replace it).
var stdin io.Reader = os.Stdin

func runProductAdd(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product add")
	var pf productFlags
	pf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if pf.kind == "" || pf.endpoint == "" {
		return usagef("--kind and --endpoint are required")
	}
	p, err := pf.product(stdin, e.Stderr)
	if err != nil {
		return err
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()

	id, ident, err := appliance.AddProduct(ctx, app, p)
	if err := audited(ctx, e, app, "product.add", productTarget(id, p.Kind, p.Endpoint), "", err); err != nil {
		var ce *tlsutil.CertError
		if errors.As(err, &ce) {
			return fmt.Errorf("%w\nrun `usagemeter product test --kind %s --endpoint %s` to see the certificate", err, pf.kind, pf.endpoint)
		}
		return err
	}
	if ident.InstanceID != "" {
		fmt.Fprintf(e.Stdout, "connected to %s %s (build %s), instance %s\n", ident.Name, ident.Version, ident.Build, ident.InstanceID)
	}
	fmt.Fprintf(e.Stdout, "added product %d: %s %s\n", id, p.Kind, p.Endpoint)
	return nil
}

func runProductList(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product list")
	asJSON := fs.Bool("json", false, "print JSON (no secrets)")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	ps, err := app.Store.Products(ctx, false)
	if err != nil {
		return err
	}
	if *asJSON {
		type product struct {
			ID          int64           `json:"id"`
			Kind        string          `json:"kind"`
			Endpoint    string          `json:"endpoint"`
			Username    string          `json:"username"`
			Active      bool            `json:"active"`
			Deactivated *time.Time      `json:"deactivated_at"`
			PairedID    int64           `json:"paired_id,omitempty"`
			InstanceID  string          `json:"instance_id,omitempty"`
			Thumbprint  string          `json:"thumbprint,omitempty"`
			Options     json.RawMessage `json:"options"`
		}
		out := []product{}
		for _, p := range ps {
			out = append(out, product{p.ID, p.Kind, p.Endpoint, p.Username, p.Active, p.DeactivatedAt, p.PairedID, p.InstanceID, p.Thumbprint, p.Options})
		}
		return writeJSON(e, out)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tENDPOINT\tUSER\tSTATE\tPAIRED\tINSTANCE")
	for _, p := range ps {
		state := "active"
		if !p.Active {
			state = "deactivated " + p.DeactivatedAt.Format("2006-01-02")
		}
		paired := "-"
		if p.PairedID != 0 {
			paired = strconv.FormatInt(p.PairedID, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Kind, p.Endpoint, p.Username, state, paired, p.InstanceID)
	}
	return tw.Flush()
}

func productID(fs *flag.FlagSet) (int64, error) {
	if fs.NArg() != 1 {
		return 0, usagef("want one product id (see product list)")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return 0, usagef("product id %q is not a number", fs.Arg(0))
	}
	return id, nil
}

// openForProduct is the preamble of a command on one product (`product
// remove ID`): flags (before or after the id), the id, the appliance.
func openForProduct(ctx context.Context, e *Env, name string, args []string) (*appliance.App, int64, error) {
	fs, cfgPath := newFlags(e, name)
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return nil, 0, flagError(err)
	}
	id, err := productID(fs)
	if err != nil {
		return nil, 0, err
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	return app, id, err
}

func runProductRemove(ctx context.Context, e *Env, args []string) error {
	app, id, err := openForProduct(ctx, e, "product remove", args)
	if err != nil {
		return err
	}
	defer app.Close()
	deleted, err := app.Store.RemoveProduct(ctx, id, e.Now())
	if err := audited(ctx, e, app, "product.remove", productTarget(id, "", ""), "", err); err != nil {
		return err
	}
	if deleted {
		fmt.Fprintf(e.Stdout, "product %d removed\n", id)
	} else {
		fmt.Fprintf(e.Stdout, "product %d removed from collection; its usage history is kept for reports\n", id)
	}
	return nil
}

func runProductSetThumbprint(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product set-thumbprint")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 2 {
		return usagef("usage: product set-thumbprint ID THUMBPRINT")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return usagef("product id %q is not a number", fs.Arg(0))
	}
	app, err := appliance.Open(ctx, *cfgPath, e.Stderr)
	if err != nil {
		return err
	}
	defer app.Close()
	if _, err := app.Store.Product(ctx, id); err != nil {
		return err
	}
	tp := tlsutil.Normalize(fs.Arg(1))
	err = app.Store.SetProductThumbprint(ctx, id, tp)
	if err := audited(ctx, e, app, "product.update", productTarget(id, "", ""), "changed certificate", err); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "product %d: accepted certificate %s\n", id, tp)
	return nil
}

// runProductTest shows the certificate a product presents and, with
// credentials, whether the login works and which instance it is.
func runProductTest(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product test")
	var pf productFlags
	pf.register(fs)
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return flagError(err)
	}
	var p store.Product
	var app *appliance.App
	if fs.NArg() == 1 {
		id, err := productID(fs)
		if err != nil {
			return err
		}
		if app, err = appliance.Open(ctx, *cfgPath, e.Stderr); err != nil {
			return err
		}
		defer app.Close()
		if p, err = app.Store.Product(ctx, id); err != nil {
			return err
		}
	} else {
		if pf.kind == "" || pf.endpoint == "" {
			return usagef("give a product id, or --kind and --endpoint")
		}
		var err error
		if p, err = pf.product(stdin, e.Stderr); err != nil {
			return err
		}
		p.PairedID = 0 // a test reaches the product alone
	}

	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	info, err := tlsutil.Probe(pctx, p.Endpoint)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "certificate of %s\n  subject:    %s\n  issuer:     %s\n  valid:      %s to %s\n  SHA-256:    %s\n",
		p.Endpoint, info.Subject, info.Issuer, info.NotBefore.Format(time.RFC3339), info.NotAfter.Format(time.RFC3339), info.Thumbprint)
	if days := time.Until(info.NotAfter).Hours() / 24; days < 30 {
		fmt.Fprintf(e.Stdout, "  WARNING:    expires in %.0f days\n", days)
	}
	switch {
	case p.Thumbprint != "" && p.Thumbprint == info.Thumbprint:
		fmt.Fprintln(e.Stdout, "  trust:      accepted thumbprint matches")
	case p.Thumbprint != "":
		fmt.Fprintf(e.Stdout, "  trust:      CHANGED: the accepted thumbprint is %s\n", p.Thumbprint)
	}
	if p.Username == "" && !p.Password.IsSet() {
		return nil
	}
	timeout := time.Minute
	logger := appliance.NewLogger(config.Log{Level: "warn"}, e.Stderr)
	if app != nil {
		timeout, logger = app.Config.Collection.CallTimeout.D(), app.Log
	}
	id, err := appliance.IdentifyProduct(ctx, p, timeout, logger)
	if err != nil {
		return err
	}
	if id == (collectors.Identity{}) {
		return nil
	}
	fmt.Fprintf(e.Stdout, "login OK: %s %s (build %s), instance %s\n", id.Name, id.Version, id.Build, id.InstanceID)
	return nil
}

// runProductSet changes a product in place: only the flags given change.
// Address, account, certificate and options apply from the next
// collection; the VCF edition and the Tanzu metric are recorded with the
// hour they apply from (--from), which the report splits the month at.
func runProductSet(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "product set")
	var pf productFlags
	idFlag := fs.Int64("id", 0, "product id (or give it as the argument)")
	fs.StringVar(&pf.endpoint, "endpoint", "", "new product URL")
	fs.StringVar(&pf.username, "username", "", "new metering account (give its password too)")
	fs.StringVar(&pf.passwordFile, "password-file", "", "file holding the new password")
	fs.BoolVar(&pf.passwordStdin, "password-stdin", false, "read the new password from standard input (asked without echo on a terminal)")
	fs.StringVar(&pf.thumbprint, "accept-thumbprint", "", "SHA-256 thumbprint of the product's new certificate (see product test)")
	fs.StringVar(&pf.options, "options", "", "kind-specific options as JSON, merged into the product's (a key set to null is removed)")
	vcf := fs.String("vcf-edition", "", "vcenter: the VCF edition (standard, advanced, enterprise, with -vsan, or sddc-manager); none to unflag")
	tanzu := fs.String("tanzu-metric", "", "vcenter: Tanzu metered by vram or cores")
	fromFlag := fs.String("from", "", "with --vcf-edition or --tanzu-metric: the hour the change applies from (RFC 3339); default the current hour")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return flagError(err)
	}
	id := *idFlag
	if fs.NArg() > 0 || id == 0 {
		var err error
		if id, err = productID(fs); err != nil {
			return err
		}
	}
	var u store.ProductUpdate
	var changed []string
	if pf.endpoint != "" {
		u.Endpoint, changed = &pf.endpoint, append(changed, "endpoint")
	}
	if pf.username != "" {
		u.Username, changed = &pf.username, append(changed, "username")
	}
	pw, set, err := pf.password(stdin, e.Stderr)
	if err != nil {
		return err
	}
	if set {
		u.Password, changed = &pw, append(changed, "password")
	} else if pf.username != "" {
		return usagef("--username %s needs its password: --password-file FILE or --password-stdin", pf.username)
	}
	if pf.thumbprint != "" {
		tp := tlsutil.Normalize(pf.thumbprint)
		u.Thumbprint, changed = &tp, append(changed, "certificate")
	}
	if pf.options != "" {
		var o map[string]any
		if err := json.Unmarshal([]byte(pf.options), &o); err != nil {
			return usagef("--options: not a JSON object: %v", err)
		}
		for _, k := range []string{store.SettingVCFEdition, store.SettingTanzuMetric} {
			if _, ok := o[k]; ok {
				return usagef("--options: set %s with --%s, which records the hour it applies from", k, strings.ReplaceAll(k, "_", "-"))
			}
		}
		changed = append(changed, "options")
	}
	billing := map[string]string{}
	if *vcf != "" {
		v := *vcf
		if v == "none" {
			v = ""
		}
		billing[store.SettingVCFEdition] = v
	}
	if *tanzu != "" {
		billing[store.SettingTanzuMetric] = *tanzu
	}
	if len(changed) == 0 && len(billing) == 0 {
		return usagef("nothing to change: give --endpoint, --username with a password, --password-file, --password-stdin, --accept-thumbprint, --options, --vcf-edition or --tanzu-metric")
	}
	app, from, now, err := openForChange(ctx, e, *cfgPath, *fromFlag)
	if err != nil {
		return err
	}
	defer app.Close()
	if len(changed) > 0 {
		if slices.Contains(changed, "options") {
			p, err := app.Store.Product(ctx, id)
			if err != nil {
				return err
			}
			if u.Options, err = pf.mergeOptions(p.Options); err != nil {
				return err
			}
		}
		_, err := appliance.SetProduct(ctx, app, id, u)
		if err := audited(ctx, e, app, "product.update", productTarget(id, "", ""), "changed "+strings.Join(changed, ", "), err); err != nil {
			var ce *tlsutil.CertError
			if errors.As(err, &ce) {
				return fmt.Errorf("%w\nrun `usagemeter product test %d` to see the certificate, then pass --accept-thumbprint", err, id)
			}
			return err
		}
		fmt.Fprintf(e.Stdout, "product %d changed (%s); it applies from the next collection\n", id, strings.Join(changed, ", "))
	}
	if len(billing) > 0 {
		var keys []string
		for k := range billing {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return audited(ctx, e, app, "product.update", productTarget(id, "", ""), "changed "+strings.Join(keys, ", "), setBillingOptions(ctx, e, app, id, billing, from, now))
	}
	return nil
}

// mergeOptions merges --options and the convenience flags into the
// product's options; a key set to null is removed.
func (pf *productFlags) mergeOptions(current json.RawMessage) (json.RawMessage, error) {
	opts := map[string]any{}
	if len(current) > 0 {
		if err := json.Unmarshal(current, &opts); err != nil {
			return nil, fmt.Errorf("the product's stored options: %w", err)
		}
	}
	add, err := pf.optionsJSON()
	if err != nil {
		return nil, err
	}
	var changes map[string]any
	if err := json.Unmarshal(add, &changes); err != nil {
		return nil, err
	}
	for k, v := range changes {
		if v == nil {
			delete(opts, k)
		} else {
			opts[k] = v
		}
	}
	return json.Marshal(opts)
}

// reorder puts flags before positional arguments, so that both
// `product set 3 --endpoint X` and `product set --endpoint X 3` parse.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(append(flags, pos...), args[i:]...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(fs, a) {
				i++
				flags = append(flags, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

// isBoolFlag reports whether flag a (with its dashes) takes no value.
func isBoolFlag(fs *flag.FlagSet, a string) bool {
	f := fs.Lookup(strings.TrimLeft(a, "-"))
	if f == nil {
		return true // -h, --help, or unknown: Parse says so
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func runProductDeactivate(ctx context.Context, e *Env, args []string) error {
	return setActive(ctx, e, "product deactivate", args, false)
}

func runProductReactivate(ctx context.Context, e *Env, args []string) error {
	return setActive(ctx, e, "product reactivate", args, true)
}

// setActive stops or resumes collection from a product, which keeps its
// registration, credentials and history.
func setActive(ctx context.Context, e *Env, name string, args []string, active bool) error {
	app, id, err := openForProduct(ctx, e, name, args)
	if err != nil {
		return err
	}
	defer app.Close()
	p, err := app.Store.Product(ctx, id)
	if err != nil {
		return err
	}
	if p.Active == active {
		fmt.Fprintf(e.Stdout, "product %d is already %s\n", id, map[bool]string{true: "active", false: "deactivated"}[active])
		return nil
	}
	err = app.Store.SetProductActive(ctx, id, active, e.Now())
	if err := audited(ctx, e, app, map[bool]string{true: "product.reactivate", false: "product.deactivate"}[active], productTarget(id, "", ""), "", err); err != nil {
		return err
	}
	if active {
		fmt.Fprintf(e.Stdout, "product %d reactivated: collected again from the next hour\n", id)
	} else {
		fmt.Fprintf(e.Stdout, "product %d deactivated: no longer collected; its history is kept (product reactivate %d resumes it)\n", id, id)
	}
	return nil
}

// productTarget names a product in the audit log as the web console does.
func productTarget(id int64, kind, endpoint string) string {
	t := strings.TrimSpace(kind + " " + endpoint)
	switch {
	case id == 0:
		return t
	case t == "":
		return fmt.Sprintf("product %d", id)
	}
	return fmt.Sprintf("product %d (%s)", id, t)
}
