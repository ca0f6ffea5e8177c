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
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages.
type Console struct {
	svc    *service.Service
	am     *auth.Manager
	log    *slog.Logger
	pages  map[string]*template.Template
	assets map[string]string // file name -> its path with a content hash
	mux    *http.ServeMux
	month  *monthCache
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
	c := &Console{svc: svc, am: am, log: o.Log, assets: map[string]string{}, pages: map[string]*template.Template{},
		month: &monthCache{load: svc.MonthToDate, now: time.Now}}
	if c.log == nil {
		c.log = slog.Default()
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		c.assets[p] = "/static/" + p + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.parse(); err != nil {
		return nil, err
	}
	c.routes(static)
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) {
			p, ok := c.assets[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return p, nil
		},
		"num":      num,
		"kindName": collectors.DisplayName,
		"list":     func(s ...string) []string { return s },
		"pl": func(id int64, names map[int64]string) productLink {
			return productLink{ID: id, Name: names[id]}
		},
		"when":     when,
		"hour":     hour,
		"ago":      func(t time.Time) string { return ago(c.svc.Now(), t) },
		"whenp":    func(t *time.Time) string { return whenPtr(t) },
		"agop":     func(t *time.Time) string { return agoPtr(c.svc.Now(), t) },
		"duration": duration,
		"plural":   plural,
		"query":    query,
		"add":      func(a, b int) int { return a + b },
		"cursor":   service.FormatJournalCursor,
		"join":     strings.Join,
	}
}

func (c *Console) parse() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	layout := template.Must(template.New("").Funcs(c.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/parts.html"))
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "parts.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return err
		}
		c.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

// navItem is a link of the main navigation.
type navItem struct {
	Name, Path string
	Here       bool
}

var nav = []navItem{
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

// view is what every page template gets.
type view struct {
	Title      string
	User       string
	Nav        []navItem
	Flash      string
	Error      string
	ErrorTitle string
	Version    string
	Form       url.Values // the request's form (a POST's values on an error): never passwords
	Data       any
}

// render writes page name with data. err, if not nil, is shown at the top
// in plain words, with the status it maps to.
func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title string, data any, err error) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Version: c.svc.Version(), Data: data, Form: r.Form}
	if u, ok := auth.UserFrom(r.Context()); ok {
		v.User = u.Username
		section := "/" + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		for _, n := range nav {
			n.Here = n.Path == section
			v.Nav = append(v.Nav, n)
		}
	}
	v.Flash = c.takeFlash(w, r)
	status := http.StatusOK
	if err != nil {
		status = service.StatusOf(err)
		v.ErrorTitle, v.Error = c.plain(r, err, status)
	}
	var buf bytes.Buffer
	if terr := t.ExecuteTemplate(&buf, "layout", v); terr != nil {
		c.log.Error("console: rendering a page", "page", name, "err", terr)
		http.Error(w, "the page could not be drawn: "+terr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// plain is an error's title and text for a person.
func (c *Console) plain(r *http.Request, err error, status int) (string, string) {
	msg := err.Error()
	switch {
	case status == http.StatusNotFound:
		return "Not found:", msg
	case status >= 500 && status != http.StatusBadGateway && status != http.StatusServiceUnavailable:
		c.log.Error("console", "method", r.Method, "path", r.URL.Path, "err", err)
		return "The appliance could not do this:", msg
	case status == http.StatusServiceUnavailable:
		return "Not available right now:", msg
	}
	return "Not done:", msg
}

// pageError renders a page that has nothing but the error.
func (c *Console) pageError(w http.ResponseWriter, r *http.Request, err error) {
	c.render(w, r, "error", "Error", nil, err)
}

const flashCookie = "um_flash"

// done ends a successful POST: the message is shown once on the page it
// redirects to (303, so a reload does not post again).
func (c *Console) done(w http.ResponseWriter, r *http.Request, to, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 60})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (c *Console) takeFlash(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) > 500 {
		return ""
	}
	return string(b)
}

// idOf is the {id} of the path, or an error a person reads.
func idOf(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%q is not a number of this list", r.PathValue("id"))}
	}
	return id, nil
}

// form parses a POST's form, refusing bodies over 1 MB.
func form(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &service.Error{Status: http.StatusRequestEntityTooLarge, Msg: "the form is too large (over 1 MB)"}
		}
		return service.Invalid("the form could not be read: %v", err)
	}
	return nil
}

func actor(r *http.Request) service.Actor { return auth.ActorFrom(r) }

// safeNext is where to go after logging in: a path of this site only.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

// productLink is a product named on a page, linked when it still exists.
type productLink struct {
	ID   int64
	Name string
}

// num writes any number (or a pointer to one) for a person; nil is "".
func num(v any) string {
	switch n := v.(type) {
	case float64:
		return Number(n)
	case int:
		return Number(float64(n))
	case int64:
		return Number(float64(n))
	case *int:
		if n != nil {
			return Number(float64(*n))
		}
	case *int64:
		if n != nil {
			return Number(float64(*n))
		}
	case *float64:
		if n != nil {
			return Number(*n)
		}
	default:
		return fmt.Sprint(v)
	}
	return ""
}
