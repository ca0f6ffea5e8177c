// Package console is the appliance's web console: server-rendered pages
// (html/template) over the same operations as the REST API
// (internal/web/service), mounted at / by internal/web. Every asset is
// embedded in the binary (the appliance is often air-gapped: no CDN) and
// no page carries script, inline or not: forms POST and redirect after
// success (a flash message says what was done), errors are shown on the
// page in plain words, charts are SVG drawn on the server. The CSS makes
// every page usable from a phone to a wide screen.
package console

import (
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/internal/web/ui"
)

//go:embed templates/*.html
var templateFS embed.FS

// Console serves the pages.
type Console struct {
	svc   *service.Service
	am    *auth.Manager
	log   *slog.Logger
	ui    *ui.Site
	mux   *http.ServeMux
	month *monthCache
}

// Options shape a Console.
type Options struct {
	Log *slog.Logger // nil: slog.Default()
}

// New returns the console's handler: the login page and the static assets
// for anyone, every other page for a logged-in admin (others are sent to
// the login page).
func New(svc *service.Service, am *auth.Manager) http.Handler {
	return NewWith(svc, am, Options{})
}

// NewWith is New with options.
func NewWith(svc *service.Service, am *auth.Manager, o Options) http.Handler {
	c, err := build(svc, am, o)
	if err != nil {
		panic(err) // the templates are embedded: a parse error is a build error, caught by the tests
	}
	return c
}

func build(svc *service.Service, am *auth.Manager, o Options) (*Console, error) {
	c := &Console{svc: svc, am: am, log: o.Log, month: &monthCache{load: svc.MonthToDate, now: time.Now}}
	if c.log == nil {
		c.log = slog.Default()
	}
	site, err := ui.New(ui.Options{Brand: "usagemeter", Noun: "appliance", Account: "/account", Version: svc.Version(), Nav: nav,
		Pages: templateFS, Glob: "templates/*.html", Parts: []string{"templates/parts.html"}, Now: svc.Now, Log: c.log,
		Funcs: template.FuncMap{
			"kindName": collectors.DisplayName,
			"pl": func(id int64, names map[int64]string) productLink {
				return productLink{ID: id, Name: names[id]}
			},
			"cursor": service.FormatJournalCursor,
		}})
	if err != nil {
		return nil, err
	}
	c.ui = site
	c.routes()
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

var nav = []ui.NavItem{
	{Name: "Dashboard", Path: "/"},
	{Name: "Products", Path: "/products"},
	{Name: "Journal", Path: "/journal"},
	{Name: "Alerts", Path: "/alerts"},
	{Name: "Reports", Path: "/reports"},
	{Name: "Customers", Path: "/customers"},
	{Name: "Licences", Path: "/licences"},
	{Name: "Registration", Path: "/registration"},
	{Name: "Settings", Path: "/settings"},
	{Name: "Audit log", Path: "/audit"},
}

// render writes page name with data (see ui.Site.Render).
func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title string, data any, err error) {
	c.ui.Render(w, r, name, title, data, err)
}

// pageError renders a page that has nothing but the error.
func (c *Console) pageError(w http.ResponseWriter, r *http.Request, err error) {
	c.ui.PageError(w, r, err)
}

// idOf is the {id} of the path, or an error a person reads.
func idOf(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%q is not a number of this list", r.PathValue("id"))}
	}
	return id, nil
}

func actor(r *http.Request) service.Actor { return auth.ActorFrom(r) }

// productLink is a product named on a page, linked when it still exists.
type productLink struct {
	ID   int64
	Name string
}
