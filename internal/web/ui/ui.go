// Package ui is what usagemeter's web consoles share: the appliance's
// (internal/web/console) and the receiver's fleet console
// (internal/receiver). It holds the page layout and the one stylesheet
// (embedded: no CDN, no web font, no script), the formatting of times and
// numbers for a person, the rendering of a page with its navigation, flash
// message and error in plain words, form parsing, and the login and logout
// handlers over internal/web/auth.
//
// A console gives its own page templates (each defines "content") and
// shared parts; every page is drawn inside the layout ("layout"), whose
// header names the console (Options.Brand) and links its sections
// (Options.Nav).
package ui

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
	"maps"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// NavItem is a link of the main navigation.
type NavItem struct {
	Name, Path string
	Here       bool
}

// View is what every page template gets.
type View struct {
	Title      string
	Brand      string // the console's name, in the header and the title
	Account    string // the account page the user name links to ("": none)
	User       string
	Nav        []NavItem
	Flash      string
	Error      string
	ErrorTitle string
	Version    string
	Form       url.Values // the request's form (a POST's values on an error): never passwords
	Data       any
}

// Options shape a Site.
type Options struct {
	Brand   string // e.g. "usagemeter"
	Noun    string // what the console runs on, for errors: "appliance"
	Account string // path of the account page, "" for none
	Version string
	Nav     []NavItem
	// Pages holds the console's templates: every file matching Glob is a
	// page named by its base name without ".html", drawn with the Parts
	// files (shared definitions) and the layout.
	Pages fs.FS
	Glob  string
	Parts []string
	Funcs template.FuncMap // more template functions (beside Funcs' own)
	Now   func() time.Time // nil: time.Now
	Log   *slog.Logger     // nil: slog.Default()
}

// Site draws the pages of one console.
type Site struct {
	o      Options
	pages  map[string]*template.Template
	assets map[string]string // file name -> its path with a content hash
	static fs.FS
}

// New parses the layout and the console's pages. A parse error is a
// programming error of the embedded templates, caught by the tests.
func New(o Options) (*Site, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Noun == "" {
		o.Noun = "server"
	}
	s := &Site{o: o, pages: map[string]*template.Template{}, assets: map[string]string{}}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.static = static
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		s.assets[p] = "/static/" + p + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, err
	}
	funcs := s.Funcs()
	maps.Copy(funcs, o.Funcs)
	layout, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	for _, n := range []string{"login", "error"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+n+".html")
		if err != nil {
			return nil, err
		}
		s.pages[n] = t
	}
	if o.Pages == nil {
		return s, nil
	}
	if len(o.Parts) > 0 {
		if layout, err = layout.ParseFS(o.Pages, o.Parts...); err != nil {
			return nil, err
		}
	}
	names, err := fs.Glob(o.Pages, o.Glob)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if isPart(n, o.Parts) {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(o.Pages, n)
		if err != nil {
			return nil, err
		}
		s.pages[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return s, nil
}

func isPart(name string, parts []string) bool {
	for _, p := range parts {
		if p == name {
			return true
		}
	}
	return false
}

// Funcs are the template functions every console has: asset (a static
// file's path with its content hash), num, when, hour, ago, whenp, agop,
// duration, plural, query, list, add, join.
func (s *Site) Funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) {
			p, ok := s.assets[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return p, nil
		},
		"num":      num,
		"list":     func(s ...string) []string { return s },
		"when":     when,
		"hour":     hour,
		"ago":      func(t time.Time) string { return ago(s.o.Now(), t) },
		"whenp":    whenPtr,
		"agop":     func(t *time.Time) string { return agoPtr(s.o.Now(), t) },
		"duration": duration,
		"plural":   plural,
		"query":    query,
		"add":      func(a, b int) int { return a + b },
		"join":     strings.Join,
	}
}

// Static serves the embedded assets under /static/ (mount it at
// "GET /static/"): a request with the content hash (?v=) may be cached a
// year.
func (s *Site) Static() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(s.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		files.ServeHTTP(w, r)
	})
}

// Render writes page name with data. err, if not nil, is shown at the top
// in plain words, with the status it maps to (service.StatusOf).
func (s *Site) Render(w http.ResponseWriter, r *http.Request, name, title string, data any, err error) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	v := View{Title: title, Brand: s.o.Brand, Account: s.o.Account, Version: s.o.Version, Data: data, Form: r.Form}
	if u, ok := auth.UserFrom(r.Context()); ok {
		v.User = u.Username
		section := "/" + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		for _, n := range s.o.Nav {
			n.Here = n.Path == section
			v.Nav = append(v.Nav, n)
		}
	}
	v.Flash = takeFlash(w, r)
	status := http.StatusOK
	if err != nil {
		status = service.StatusOf(err)
		v.ErrorTitle, v.Error = s.plain(r, err, status)
	}
	var buf bytes.Buffer
	if terr := t.ExecuteTemplate(&buf, "layout", v); terr != nil {
		s.o.Log.Error("console: rendering a page", "page", name, "err", terr)
		http.Error(w, "the page could not be drawn: "+terr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// plain is an error's title and text for a person.
func (s *Site) plain(r *http.Request, err error, status int) (string, string) {
	msg := err.Error()
	switch {
	case status == http.StatusNotFound:
		return "Not found:", msg
	case status >= 500 && status != http.StatusBadGateway && status != http.StatusServiceUnavailable:
		s.o.Log.Error("console", "method", r.Method, "path", r.URL.Path, "err", err)
		return "The " + s.o.Noun + " could not do this:", msg
	case status == http.StatusServiceUnavailable:
		return "Not available right now:", msg
	}
	return "Not done:", msg
}

// PageError renders a page that has nothing but the error.
func (s *Site) PageError(w http.ResponseWriter, r *http.Request, err error) {
	s.Render(w, r, "error", "Error", nil, err)
}

// NotFound is the page of a path no route has.
func (s *Site) NotFound(w http.ResponseWriter, r *http.Request) {
	s.PageError(w, r, &service.Error{Status: http.StatusNotFound, Msg: "there is no page " + r.URL.Path + " on this " + s.o.Noun + "."})
}

const flashCookie = "um_flash"

// Done ends a successful POST: the message is shown once on the page it
// redirects to (303, so a reload does not post again). Never a secret:
// the message travels in a cookie.
func Done(w http.ResponseWriter, r *http.Request, to, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 60})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func takeFlash(w http.ResponseWriter, r *http.Request) string {
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

// Form parses a POST's form, refusing bodies over 1 MB.
func Form(w http.ResponseWriter, r *http.Request) error {
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

// SafeNext is where to go after logging in: a path of this site only.
func SafeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}
