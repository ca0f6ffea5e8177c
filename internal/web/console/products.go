package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/internal/web/ui"
)

// productName is how a product is named on every page: its kind's display
// name and its endpoint.
func productName(kind, endpoint string) string {
	return collectors.DisplayName(kind) + " " + endpoint
}

type productsData struct {
	Products []service.Product
}

func (c *Console) products(w http.ResponseWriter, r *http.Request) {
	ps, err := c.svc.Products(r.Context())
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.render(w, r, "products", "Products", productsData{Products: ps}, nil)
}

type newProductData struct {
	Kinds       []service.Kind
	Kind        service.Kind
	Endpoint    string
	Certificate *service.Certificate
	VCenters    []service.Product // to pair with
}

// newProduct is the first steps of adding a product: the kind and the
// address, then (with both in the query) the certificate the product
// presents, for the admin to check and accept its thumbprint, with the
// rest of the form.
func (c *Console) newProduct(w http.ResponseWriter, r *http.Request) {
	c.showNewProduct(w, r, nil, nil)
}

func (c *Console) showNewProduct(w http.ResponseWriter, r *http.Request, cert *service.Certificate, err error) {
	_ = r.ParseForm()
	d := newProductData{Kinds: c.svc.Kinds(), Endpoint: strings.TrimSpace(r.Form.Get("endpoint")), Certificate: cert}
	for _, k := range d.Kinds {
		if k.Name == r.Form.Get("kind") {
			d.Kind = k
		}
	}
	if d.Kind.PairsWith != "" {
		ps, perr := c.svc.Products(r.Context())
		if perr != nil && err == nil {
			err = perr
		}
		for _, p := range ps {
			if p.Kind == d.Kind.PairsWith && p.Active {
				d.VCenters = append(d.VCenters, p)
			}
		}
	}
	if cert == nil && d.Endpoint != "" {
		// The certificate to check (again, after a refused add).
		c2, perr := c.svc.PreviewCertificate(r.Context(), d.Kind.Name, d.Endpoint)
		if perr == nil {
			d.Certificate = &c2
		} else if err == nil {
			err = perr
		}
	}
	c.render(w, r, "product_new", "Add a product", d, err)
}

func (c *Console) addProduct(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showNewProduct(w, r, nil, err)
		return
	}
	f := r.PostForm
	in := service.ProductInput{Kind: f.Get("kind"), Endpoint: strings.TrimSpace(f.Get("endpoint")), Username: strings.TrimSpace(f.Get("username")),
		Password: config.Secret(f.Get("password")), AcceptThumbprint: f.Get("accept_thumbprint"), VCFEdition: f.Get("vcf_edition"), TanzuMetric: f.Get("tanzu_metric")}
	if f.Get("thumbprint") != "" && in.AcceptThumbprint == "" && f.Get("trust") != "system" {
		c.showNewProduct(w, r, nil, service.Invalid("tick the box to accept the certificate's thumbprint once you have checked it (or check the address)"))
		return
	}
	if v := f.Get("vcenter_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			c.showNewProduct(w, r, nil, service.Invalid("vcenter: %q is not a product id", v))
			return
		}
		in.VCenterID = id
	}
	if o := strings.TrimSpace(f.Get("options")); o != "" {
		in.Options = json.RawMessage(o)
	}
	res, err := c.svc.AddProduct(r.Context(), actor(r), in)
	if err != nil {
		var se *service.Error
		var cert *service.Certificate
		if errors.As(err, &se) {
			cert = se.Certificate
		}
		c.showNewProduct(w, r, cert, err)
		return
	}
	msg := productName(res.Product.Kind, res.Product.Endpoint) + " added"
	if res.Identity.Name != "" {
		msg += " (" + res.Identity.Name + ")"
	}
	ui.Done(w, r, fmt.Sprintf("/products/%d", res.Product.ID), msg+". Its first hour is collected within the hour.")
}

type productData struct {
	Product     service.Product
	Options     string // the options as indented JSON
	Journal     []store.JournalEntry
	Alerts      []service.Alert
	Test        *service.TestResult
	Certificate *service.Certificate // after an edit refused for its certificate
}

func (c *Console) product(w http.ResponseWriter, r *http.Request) {
	c.showProduct(w, r, productData{}, nil)
}

func (c *Console) showProduct(w http.ResponseWriter, r *http.Request, d productData, err error) {
	id, ierr := idOf(r)
	if ierr != nil {
		c.pageError(w, r, ierr)
		return
	}
	ctx := r.Context()
	p, perr := c.svc.Product(ctx, id)
	if perr != nil {
		c.pageError(w, r, perr)
		return
	}
	d.Product = p
	var buf bytes.Buffer
	if json.Indent(&buf, p.Options, "", "  ") == nil && buf.String() != "{}" {
		d.Options = buf.String()
	}
	j, jerr := c.svc.Store().JournalKeyset(ctx, store.JournalQuery{ProductID: id, Limit: 10})
	if jerr != nil && err == nil {
		err = jerr
	}
	d.Journal = j.Entries
	as, aerr := c.svc.Alerts(ctx, true)
	if aerr != nil && err == nil {
		err = aerr
	}
	for _, a := range as {
		if a.ProductID == id {
			d.Alerts = append(d.Alerts, a)
		}
	}
	c.render(w, r, "product", productName(p.Kind, p.Endpoint), d, err)
}

func (c *Console) editProduct(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err == nil {
		err = ui.Form(w, r)
	}
	if err != nil {
		c.showProduct(w, r, productData{}, err)
		return
	}
	cur, err := c.svc.Product(r.Context(), id)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	f := r.PostForm
	var u service.ProductUpdate
	if v := strings.TrimSpace(f.Get("endpoint")); v != "" && v != cur.Endpoint {
		u.Endpoint = &v
	}
	if v := strings.TrimSpace(f.Get("username")); f.Has("username") && v != cur.Username {
		u.Username = &v
	}
	if v := f.Get("password"); v != "" {
		s := config.Secret(v)
		u.Password = &s
	}
	if v := strings.TrimSpace(f.Get("accept_thumbprint")); v != "" {
		u.AcceptThumbprint = &v
	}
	if v := strings.TrimSpace(f.Get("options")); f.Has("options") && !sameJSON(v, cur.Options) {
		if v == "" {
			v = "{}"
		}
		u.Options = json.RawMessage(v)
	}
	res, err := c.svc.UpdateProduct(r.Context(), actor(r), id, u)
	if err != nil {
		var se *service.Error
		d := productData{}
		if errors.As(err, &se) {
			d.Certificate = se.Certificate
		}
		c.showProduct(w, r, d, err)
		return
	}
	ui.Done(w, r, fmt.Sprintf("/products/%d", id), productName(res.Kind, res.Endpoint)+" saved.")
}

// sameJSON reports whether the text a holds the same JSON value as b.
func sameJSON(a string, b json.RawMessage) bool {
	var x, y any
	if a == "" {
		a = "{}"
	}
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func (c *Console) testProduct(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	res, err := c.svc.TestProduct(r.Context(), actor(r), id)
	if err != nil {
		c.showProduct(w, r, productData{}, err)
		return
	}
	c.showProduct(w, r, productData{Test: &res}, nil)
}

func (c *Console) setActive(active bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idOf(r)
		if err != nil {
			c.pageError(w, r, err)
			return
		}
		p, err := c.svc.SetActive(r.Context(), actor(r), id, active)
		if err != nil {
			c.showProduct(w, r, productData{}, err)
			return
		}
		what := "deactivated: it is not collected until reactivated; its history stays in the reports."
		if active {
			what = "reactivated: its hours are collected again."
		}
		ui.Done(w, r, fmt.Sprintf("/products/%d", id), productName(p.Kind, p.Endpoint)+" "+what)
	}
}

func (c *Console) removeProduct(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err == nil {
		err = ui.Form(w, r)
	}
	if err == nil && r.PostForm.Get("confirm") != "remove" {
		err = service.Invalid("to remove the product, tick the box that confirms it")
	}
	if err != nil {
		c.showProduct(w, r, productData{}, err)
		return
	}
	p, err := c.svc.Product(r.Context(), id)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	res, err := c.svc.RemoveProduct(r.Context(), actor(r), id)
	if err != nil {
		c.showProduct(w, r, productData{}, err)
		return
	}
	msg := productName(p.Kind, p.Endpoint) + " removed; its collected hours are kept for the reports."
	if res.Deleted {
		msg = productName(p.Kind, p.Endpoint) + " removed (it had no collected hours)."
	}
	ui.Done(w, r, "/products", msg)
}
