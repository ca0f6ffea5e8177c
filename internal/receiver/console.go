package receiver

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/internal/web/ui"
)

// The fleet console: the receiver's web pages, on the stack of the
// appliance's console (internal/web/ui for the layout, stylesheet and
// login; internal/web/auth for accounts, sessions, lock-out and the audit
// log; internal/web.Protect for the security headers and the cross-origin
// protection). Accounts live in the receiver database's admin_users (the
// appliance schema it carries): `usagemeter receiver admin set-password`.

//go:embed templates/*.html
var consoleFS embed.FS

// SessionCookie names the console's session cookie (with the __Host-
// prefix): not the appliance console's, so that both on one host keep
// their sessions.
const SessionCookie = "usagemeter_receiver_session"

// webBackend is the receiver as auth.Backend: accounts in its store, the
// audit log written by service.Audit.
type webBackend struct{ r *Receiver }

func (b webBackend) Store() *store.Store { return b.r.Store }

func (b webBackend) Record(ctx context.Context, a service.Actor, action, target, detail string, err error) {
	service.Audit(ctx, b.r.Store, b.r.Log, b.r.now(), a, action, target, detail, err)
}

type console struct {
	r  *Receiver
	am *auth.Manager
	ui *ui.Site
}

var consoleNav = []ui.NavItem{
	{Name: "Fleet", Path: "/"},
	{Name: "Months", Path: "/months"},
	{Name: "API tokens", Path: "/api-tokens"},
	{Name: "Audit log", Path: "/audit"},
}

// authManager authenticates the console and the fleet API: the accounts,
// sessions and API tokens of the receiver's database.
func (r *Receiver) authManager() *auth.Manager {
	cfg := r.Auth
	if cfg.CookieName == "" {
		cfg.CookieName = SessionCookie
	}
	return auth.New(webBackend{r}, cfg)
}

// console builds the console's handler, wrapped by web.Protect.
func (r *Receiver) console(am *auth.Manager) (http.Handler, error) {
	c := &console{r: r, am: am}
	site, err := ui.New(ui.Options{Brand: "usagemeter receiver", Noun: "receiver", Version: r.Version, Nav: consoleNav,
		Pages: consoleFS, Glob: "templates/*.html", Parts: []string{"templates/fleet_parts.html"}, Now: r.now, Log: r.Log,
		Funcs: template.FuncMap{"kindName": collectors.DisplayName, "short": short}})
	if err != nil {
		return nil, err
	}
	c.ui = site
	mux, in := http.NewServeMux(), http.NewServeMux()
	mux.Handle("GET /static/", site.Static())
	site.LoginRoutes(c.am, mux, in)
	in.HandleFunc("GET /{$}", c.fleet)
	in.HandleFunc("GET /appliances/{id}", c.appliance)
	in.HandleFunc("POST /appliances/{id}/revoke", c.revoke)
	in.HandleFunc("POST /tokens", c.createToken)
	in.HandleFunc("GET /api-tokens", c.apiTokens)
	in.HandleFunc("POST /api-tokens", c.createAPIToken)
	in.HandleFunc("POST /api-tokens/{id}/revoke", c.revokeAPIToken)
	in.HandleFunc("GET /months", c.months)
	in.HandleFunc("GET /months/{month}", c.month)
	in.HandleFunc("GET /audit", c.audit)
	in.HandleFunc("/", site.NotFound)
	mux.Handle("/", c.am.RequirePage(in))
	return web.Protect(true, web.DefaultMaxBody, "receiver", mux), nil
}

// short cuts a long hash or fingerprint for a table cell (the page gives
// the whole value in the cell's title); text with spaces stays whole.
func short(s string) string {
	if len(s) <= 16 || strings.Contains(s, " ") {
		return s
	}
	return s[:12] + "…"
}

// fleetData is the fleet page: every appliance, the newest months as
// columns.
type fleetData struct {
	*FleetView
	Months []string
	Rows   []fleetRow
	Silent int
	Alerts int
}

type fleetRow struct {
	FleetAppliance
	ByMonth []MonthState // aligned with fleetData.Months
}

// shownMonths is how many months the fleet page has columns for.
const shownMonths = 4

func (c *console) fleetData(ctx context.Context) (*fleetData, error) {
	f, err := c.r.Fleet(ctx)
	if err != nil {
		return nil, err
	}
	d := &fleetData{FleetView: f}
	set := map[string]bool{}
	for _, a := range f.Appliances {
		for _, m := range a.Months {
			set[m.Month] = true
		}
	}
	for m := range set {
		d.Months = append(d.Months, m)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(d.Months)))
	if len(d.Months) > shownMonths {
		d.Months = d.Months[:shownMonths]
	}
	for _, a := range f.Appliances {
		row := fleetRow{FleetAppliance: a}
		for _, m := range d.Months {
			row.ByMonth = append(row.ByMonth, monthOf(a, m))
		}
		if a.Silent {
			d.Silent++
		}
		d.Alerts += len(a.OpenAlerts)
		d.Rows = append(d.Rows, row)
	}
	return d, nil
}

// monthOf is a's state for month, "" when the month is not one of a's.
func monthOf(a FleetAppliance, month string) MonthState {
	for _, m := range a.Months {
		if m.Month == month {
			return m
		}
	}
	return MonthState{Month: month}
}

func (c *console) fleet(w http.ResponseWriter, req *http.Request) {
	d, err := c.fleetData(req.Context())
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	c.ui.Render(w, req, "fleet", "Fleet", d, nil)
}

// applianceData is one appliance's page.
type applianceData struct {
	FleetAppliance
	Audit []AuditEvent
}

// AuditEvent is a row of receiver_audit.
type AuditEvent struct {
	At        time.Time
	Appliance string
	Month     string
	Event     string
	Detail    string
}

// auditEvents lists receiver_audit rows, newest first, of an appliance or
// a month ("" for any).
func (r *Receiver) auditEvents(ctx context.Context, appliance, month string, limit int) ([]AuditEvent, error) {
	rows, err := r.Pool.Query(ctx, `SELECT at, appliance, month, event, detail FROM receiver_audit
		WHERE ($1 = '' OR appliance = $1) AND ($2 = '' OR month = $2) ORDER BY at DESC, id DESC LIMIT $3`, appliance, month, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEvent])
}

func (c *console) findAppliance(ctx context.Context, id string) (*FleetAppliance, error) {
	f, err := c.r.Fleet(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range f.Appliances {
		if a.ID == id {
			return &a, nil
		}
	}
	return nil, &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("no appliance %q has enrolled with this receiver", id)}
}

func (c *console) appliance(w http.ResponseWriter, req *http.Request) {
	c.showAppliance(w, req, nil)
}

func (c *console) showAppliance(w http.ResponseWriter, req *http.Request, failed error) {
	ctx := req.Context()
	a, err := c.findAppliance(ctx, req.PathValue("id"))
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	d := applianceData{FleetAppliance: *a}
	if d.Audit, err = c.r.auditEvents(ctx, a.ID, "", 50); err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	c.ui.Render(w, req, "appliance", "Appliance "+a.ID, d, failed)
}

func (c *console) revoke(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	err := ui.Form(w, req)
	if err == nil && req.PostForm.Get("confirm") != "yes" {
		err = service.Invalid("tick the box to confirm: the appliance's uploads and heartbeats are refused from then on")
	}
	if err == nil {
		if err = c.r.Revoke(req.Context(), id); err != nil {
			err = &service.Error{Status: http.StatusConflict, Err: err}
		}
		webBackend{c.r}.Record(req.Context(), auth.ActorFrom(req), "appliance.revoke", "appliance "+id, "", err)
	}
	if err != nil {
		c.showAppliance(w, req, err)
		return
	}
	ui.Done(w, req, "/appliances/"+id, "Appliance "+id+" is revoked: its uploads and heartbeats are refused. It may enrol again with a new token.")
}

// tokenData is the page showing a new enrolment token, once.
type tokenData struct {
	Token      string
	Note       string
	Expires    time.Time
	Thumbprint string
}

func (c *console) createToken(w http.ResponseWriter, req *http.Request) {
	err := ui.Form(w, req)
	var d tokenData
	if err == nil {
		d.Note = strings.TrimSpace(req.PostForm.Get("note"))
		ttl := DefaultTokenTTL
		if h := req.PostForm.Get("hours"); h != "" {
			n, perr := strconv.Atoi(h)
			if perr != nil || n < 1 || n > 24*90 {
				err = service.Invalid("valid for: give a number of hours from 1 to 2160 (90 days)")
			}
			ttl = time.Duration(n) * time.Hour
		}
		if len(d.Note) > 200 {
			err = service.Invalid("note: at most 200 characters")
		}
		if err == nil {
			d.Token, d.Expires, err = c.r.CreateToken(req.Context(), d.Note, ttl)
		}
		webBackend{c.r}.Record(req.Context(), auth.ActorFrom(req), "enrolment_token.create", "enrolment token", "note "+d.Note, err)
	}
	if err != nil {
		fd, ferr := c.fleetData(req.Context())
		if ferr != nil {
			c.ui.PageError(w, req, errors.Join(err, ferr))
			return
		}
		c.ui.Render(w, req, "fleet", "Fleet", fd, err)
		return
	}
	d.Thumbprint = c.r.Thumbprint
	// Shown on this response only (no redirect: the token is stored
	// nowhere in clear, not even in a flash cookie).
	c.ui.Render(w, req, "token", "Enrolment token", d, nil)
}

// monthRow is a month of the months page: how many appliances are in each
// report state.
type monthRow struct {
	Month                                       string
	Expected, Received, Verified, Merged, Total int
	Missing                                     int
}

func (c *console) months(w http.ResponseWriter, req *http.Request) {
	f, err := c.r.Fleet(req.Context())
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	byMonth := map[string]*monthRow{}
	for _, a := range f.Appliances {
		for _, m := range a.Months {
			row := byMonth[m.Month]
			if row == nil {
				row = &monthRow{Month: m.Month}
				byMonth[m.Month] = row
			}
			row.Total++
			switch m.State {
			case MonthExpected:
				row.Expected++
				if m.Missing {
					row.Missing++
				}
			case MonthReceived:
				row.Received++
			case MonthVerified:
				row.Verified++
			case MonthMerged:
				row.Merged++
			}
		}
	}
	rows := make([]monthRow, 0, len(byMonth))
	for _, r := range byMonth {
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Month > rows[j].Month })
	c.ui.Render(w, req, "months", "Months", rows, nil)
}

// monthData is one month's page: the merged provider report, every
// version received, and the month's audit trail.
type monthData struct {
	*Month
	Versions []BundleVersion
	Audit    []AuditEvent
	Billed   int // parts billed
	Unbilled int // parts of a shared instance billed by another appliance
}

// BundleVersion is a version an appliance sent for a month.
type BundleVersion struct {
	ApplianceID string
	Version     int
	State       string
	ReceivedAt  time.Time
	SHA256      string
	Size        int64
	Error       string
	ReplacedBy  *int // the version that replaced it
	Merged      bool
}

func (r *Receiver) bundleVersions(ctx context.Context, month string) ([]BundleVersion, error) {
	rows, err := r.Pool.Query(ctx, `SELECT a.appliance_id, b.version, b.state, b.received_at, b.sha256, b.size, b.error, nb.version, b.merged_at IS NOT NULL
		FROM receiver_bundles b JOIN receiver_appliances a ON a.id = b.appliance LEFT JOIN receiver_bundles nb ON nb.id = b.replaced_by
		WHERE b.month = $1 ORDER BY a.id, b.version`, month)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[BundleVersion])
}

func (c *console) month(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	month := req.PathValue("month")
	if !monthRE.MatchString(month) {
		c.ui.PageError(w, req, &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%q is not a month (YYYY-MM)", month)})
		return
	}
	m, err := c.r.Merge(ctx, month)
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	d := monthData{Month: m}
	for _, l := range m.Lines {
		for _, p := range l.Parts {
			if p.Billed {
				d.Billed++
			} else {
				d.Unbilled++
			}
		}
	}
	if d.Versions, err = c.r.bundleVersions(ctx, month); err == nil {
		d.Audit, err = c.r.auditEvents(ctx, "", month, 200)
	}
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	c.ui.Render(w, req, "month", "Month "+month, d, nil)
}

func (c *console) audit(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	admin, err := c.r.Store.Audit(ctx, store.AuditFilter{Limit: 200})
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	events, err := c.r.auditEvents(ctx, "", "", 200)
	if err != nil {
		c.ui.PageError(w, req, err)
		return
	}
	c.ui.Render(w, req, "audit", "Audit log", struct {
		Admin  []store.AuditEntry
		Events []AuditEvent
	}{admin, events}, nil)
}
