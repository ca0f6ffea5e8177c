package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
