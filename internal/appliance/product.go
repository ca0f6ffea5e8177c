package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"

	// The product collectors, linked in here and only here.
	_ "github.com/usagemeter/usagemeter/collectors/all" // every product kind
)

// AddProduct registers a product: pairing checked, options validated by the
// collector, the instance identified over TLS (system roots or the accepted
// thumbprint) so that the same instance is never registered twice, then
// stored with its credentials sealed. `product add` and the demo use it.
func AddProduct(ctx context.Context, app *App, p store.Product) (int64, collectors.Identity, error) {
	ident, err := check(ctx, app, p)
	if err != nil {
		return 0, ident, err
	}
	if ident.InstanceID != "" {
		p.InstanceID = ident.InstanceID
		p.Version = ident.VersionLabel()
	}
	id, err := app.Store.AddProduct(ctx, p)
	return id, ident, err
}

// check builds p's collector (pairing and options checked) and, when the
// kind can, identifies the instance at p's address with p's credentials.
func check(ctx context.Context, app *App, p store.Product) (collectors.Identity, error) {
	var ident collectors.Identity
	t := scheduler.Target(p, app.Config.Collection.CallTimeout.D(), app.Log)
	kind, ok := collectors.Lookup(p.Kind)
	if !ok {
		return ident, fmt.Errorf("unknown product kind %q (known: %s)", p.Kind, strings.Join(collectors.Kinds(), ", "))
	}
	switch {
	case p.PairedID != 0 && kind.PairsWith == "":
		return ident, fmt.Errorf("a %s product is not paired with another product: drop --vcenter", p.Kind)
	case p.PairedID != 0:
		paired, err := app.Store.Product(ctx, p.PairedID)
		if err != nil {
			return ident, fmt.Errorf("--vcenter %d: %w", p.PairedID, err)
		}
		if paired.Kind != kind.PairsWith {
			return ident, fmt.Errorf("--vcenter %d is a %s, not a %s", p.PairedID, paired.Kind, kind.PairsWith)
		}
		pt := scheduler.Target(paired, app.Config.Collection.CallTimeout.D(), app.Log)
		t.Paired = &pt
	case kind.PairsWith != "":
		return ident, fmt.Errorf("a %s product must be paired with its %s: add the %s first, then pass --vcenter ID (see product list)", p.Kind, collectors.DisplayName(kind.PairsWith), kind.PairsWith)
	}
	col, err := collectors.New(t)
	if err != nil {
		return ident, err
	}
	if cl, ok := col.(collectors.Closer); ok {
		defer func() { _ = cl.Close(ctx) }()
	}
	idf, ok := col.(collectors.Identifier)
	if !ok {
		return ident, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 2*app.Config.Collection.CallTimeout.D())
	defer cancel()
	if ident, err = idf.Identify(cctx); err != nil {
		var ce *tlsutil.CertError
		if errors.As(err, &ce) {
			return ident, err
		}
		return ident, fmt.Errorf("checking %s: %w", p.Endpoint, err)
	}
	return ident, nil
}

// SetProduct changes a registered product in place (`product set`): a
// rotated password, a new address or certificate, new options. The changed
// product is checked as an added one is (options, login, identity) before
// anything is stored, and must still be the same instance: another
// instance is another product (remove this one, add that one). It applies
// from the next collection; the product keeps its id and history.
func SetProduct(ctx context.Context, app *App, id int64, u store.ProductUpdate) (collectors.Identity, error) {
	p, err := app.Store.Product(ctx, id)
	if err != nil {
		return collectors.Identity{}, err
	}
	if u.Endpoint != nil {
		p.Endpoint = *u.Endpoint
	}
	if u.Username != nil {
		p.Username = *u.Username
	}
	if u.Password != nil {
		p.Password = *u.Password
	}
	if u.Thumbprint != nil {
		p.Thumbprint = *u.Thumbprint
	}
	if u.Options != nil {
		p.Options = u.Options
	}
	ident, err := check(ctx, app, p)
	if err != nil {
		return ident, err
	}
	if p.InstanceID != "" && ident.InstanceID != "" && ident.InstanceID != p.InstanceID {
		return ident, fmt.Errorf("%s is instance %s, but product %d is instance %s: that is another %s; remove product %d and add the new one if it replaces it",
			p.Endpoint, ident.InstanceID, id, p.InstanceID, collectors.DisplayName(p.Kind), id)
	}
	return ident, app.Store.UpdateProduct(ctx, id, u)
}

// TestProduct identifies p over TLS with its credentials, as its collector
// would connect (`product test ID` and the web console's test): the
// instance, or why the connection or the login failed. A kind that cannot
// identify itself answers an empty Identity.
func TestProduct(ctx context.Context, app *App, p store.Product) (collectors.Identity, error) {
	return identify(ctx, p, app.Config.Collection.CallTimeout.D(), app.Log)
}

// identify connects to p alone (without its paired product) and asks it
// who it is.
func identify(ctx context.Context, p store.Product, timeout time.Duration, log *slog.Logger) (collectors.Identity, error) {
	p.PairedID = 0
	col, err := collectors.New(scheduler.Target(p, timeout, log))
	if err != nil {
		return collectors.Identity{}, err
	}
	if cl, ok := col.(collectors.Closer); ok {
		defer func() { _ = cl.Close(ctx) }()
	}
	idf, ok := col.(collectors.Identifier)
	if !ok {
		return collectors.Identity{}, nil
	}
	ictx, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	id, err := idf.Identify(ictx)
	if err != nil {
		return id, fmt.Errorf("login: %w", err)
	}
	return id, nil
}

// IdentifyProduct is TestProduct for a product not registered (or without
// an opened appliance: `product test --kind --endpoint`).
func IdentifyProduct(ctx context.Context, p store.Product, timeout time.Duration, log *slog.Logger) (collectors.Identity, error) {
	return identify(ctx, p, timeout, log)
}

// SetBillingOptions records changes of the settings that decide a
// product's billing (store.SettingVCFEdition, store.SettingTanzuMetric),
// each applying from the hour from: the report splits the month there, the
// collector reads it from its next hour. `product set --vcf-edition`,
// `--tanzu-metric` and the web console.
func SetBillingOptions(ctx context.Context, app *App, id int64, changes map[string]string, from, now time.Time) error {
	p, err := app.Store.Product(ctx, id)
	if err != nil {
		return err
	}
	// The kind validates the options it would collect with.
	opts := map[string]any{}
	if err := json.Unmarshal(p.Options, &opts); err != nil {
		return fmt.Errorf("product %d options: %w", p.ID, err)
	}
	for k, v := range changes {
		opts[k] = v
	}
	raw, _ := json.Marshal(opts)
	// Only the options are checked here: the account stands in when the
	// product has none recorded.
	user, pw := p.Username, p.Password
	if user == "" {
		user, pw = "validation", "validation"
	}
	if _, err := collectors.New(collectors.Target{Kind: p.Kind, Endpoint: p.Endpoint, Username: user, Password: pw, Options: raw}); err != nil {
		return err
	}
	for _, k := range []string{store.SettingVCFEdition, store.SettingTanzuMetric} {
		v, ok := changes[k]
		if !ok {
			continue
		}
		if err := app.Store.ChangeProductOption(ctx, p.ID, k, v, from, now); err != nil {
			return err
		}
	}
	return nil
}
