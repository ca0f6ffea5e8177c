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
	var ident collectors.Identity
	t := scheduler.Target(p, app.Config.Collection.CallTimeout.D(), app.Log)
	kind, ok := collectors.Lookup(p.Kind)
	if !ok {
		return 0, ident, fmt.Errorf("unknown product kind %q (known: %s)", p.Kind, strings.Join(collectors.Kinds(), ", "))
	}
	switch {
	case p.PairedID != 0 && kind.PairsWith == "":
		return 0, ident, fmt.Errorf("a %s product is not paired with another product: drop --vcenter", p.Kind)
	case p.PairedID != 0:
		paired, err := app.Store.Product(ctx, p.PairedID)
		if err != nil {
			return 0, ident, fmt.Errorf("--vcenter %d: %w", p.PairedID, err)
		}
		if paired.Kind != kind.PairsWith {
			return 0, ident, fmt.Errorf("--vcenter %d is a %s, not a %s", p.PairedID, paired.Kind, kind.PairsWith)
		}
		pt := scheduler.Target(paired, app.Config.Collection.CallTimeout.D(), app.Log)
		t.Paired = &pt
	case kind.PairsWith != "":
		return 0, ident, fmt.Errorf("a %s product must be paired with its %s: add the %s first, then pass --vcenter ID (see product list)", p.Kind, collectors.DisplayName(kind.PairsWith), kind.PairsWith)
	}
	col, err := collectors.New(t)
	if err != nil {
		return 0, ident, err
	}
	if idf, ok := col.(collectors.Identifier); ok {
		cctx, cancel := context.WithTimeout(ctx, 2*app.Config.Collection.CallTimeout.D())
		ident, err = idf.Identify(cctx)
		cancel()
		if cl, ok := col.(collectors.Closer); ok {
			_ = cl.Close(ctx)
		}
		if err != nil {
			var ce *tlsutil.CertError
			if errors.As(err, &ce) {
				return 0, ident, err
			}
			return 0, ident, fmt.Errorf("checking %s: %w", p.Endpoint, err)
		}
		p.InstanceID = ident.InstanceID
		p.Version = ident.Version
		if ident.Build != "" && ident.Build != ident.Version {
			p.Version += " build " + ident.Build
		}
	}
	id, err := app.Store.AddProduct(ctx, p)
	return id, ident, err
}
