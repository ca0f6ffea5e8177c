package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/internal/web/ui"
)

// pageSize is the journal's rows per page.
const pageSize = 50

type journalData struct {
	Page      store.JournalPage
	Products  []service.Product
	ProductID int64
	State     string
}

// journal pages through the collection journal by keyset (before/after a
// run's hour and product): the same cost on every page of years of hours,
// where an offset would read every row before the page. It reads the
// store directly (store.JournalKeyset) for the page's first and last
// places; the cursors are the service's, as /api/v1/journal takes them.
func (c *Console) journal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := journalData{State: q.Get("state")}
	jq := store.JournalQuery{State: d.State, Limit: pageSize}
	var err error
	switch d.State {
	case "", "done", "failed", "running":
	default:
		err = service.Invalid("state %q: choose done, failed or running", d.State)
	}
	if v := q.Get("product"); v != "" && err == nil {
		if d.ProductID, err = strconv.ParseInt(v, 10, 64); err != nil {
			err = service.Invalid("product: %q is not a product id", v)
		}
		jq.ProductID = d.ProductID
	}
	if err == nil {
		jq.Before, err = service.ParseJournalCursor(q.Get("before"))
	}
	if err == nil {
		jq.After, err = service.ParseJournalCursor(q.Get("after"))
	}
	ctx := r.Context()
	if err == nil {
		d.Page, err = c.svc.Store().JournalKeyset(ctx, jq)
	}
	ps, perr := c.svc.Products(ctx)
	if err == nil {
		err = perr
	}
	d.Products = ps
	c.render(w, r, "journal", "Collection journal", d, err)
}

type alertsData struct {
	Open, History []service.Alert
	Names         map[int64]string
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	all, err := c.svc.Alerts(ctx, false)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	d := alertsData{Names: map[int64]string{}}
	for _, a := range all {
		if a.ResolvedAt == nil {
			d.Open = append(d.Open, a)
		} else {
			d.History = append(d.History, a)
		}
	}
	ps, err := c.svc.Products(ctx)
	for _, p := range ps {
		d.Names[p.ID] = productName(p.Kind, p.Endpoint)
	}
	c.render(w, r, "alerts", "Alerts", d, err)
}

type reportsData struct {
	Reports []service.Report
	Info    service.ApplianceInfo
	Verify  *service.Verification
	Month   string // the month the generate form proposes
}

func (c *Console) reports(w http.ResponseWriter, r *http.Request) { c.showReports(w, r, nil, nil) }

func (c *Console) showReports(w http.ResponseWriter, r *http.Request, v *service.Verification, err error) {
	ctx := r.Context()
	d := reportsData{Verify: v}
	var lerr error
	if d.Reports, lerr = c.svc.Reports(ctx); lerr != nil && err == nil {
		err = lerr
	}
	if d.Info, lerr = c.svc.Appliance(ctx); lerr != nil && err == nil {
		err = lerr
	}
	now := c.svc.Now().UTC()
	d.Month = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0).Format("2006-01")
	c.render(w, r, "reports", "Reports", d, err)
}

func (c *Console) generateReport(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showReports(w, r, nil, err)
		return
	}
	rep, err := c.svc.GenerateReport(r.Context(), actor(r), strings.TrimSpace(r.PostForm.Get("month")))
	if err != nil {
		c.showReports(w, r, nil, err)
		return
	}
	ui.Done(w, r, "/reports", fmt.Sprintf("The report of %s is generated: version %d (%s). It is delivered by Resend or at the monthly run.", rep.Month, rep.Version, rep.FileName))
}

func (c *Console) download(plain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idOf(r)
		if err != nil {
			c.pageError(w, r, err)
			return
		}
		open := c.svc.OpenReportBundle
		if plain {
			open = c.svc.OpenReportPlain
		}
		d, err := open(r.Context(), actor(r), id)
		if err != nil {
			c.showReports(w, r, nil, err)
			return
		}
		defer d.File.Close()
		w.Header().Set("Content-Type", d.ContentType)
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.Name))
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "", d.ModTime, d.File)
	}
}

func (c *Console) resendReport(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	rep, err := c.svc.ResendReport(r.Context(), actor(r), id)
	if err != nil {
		c.showReports(w, r, nil, err)
		return
	}
	ui.Done(w, r, "/reports", fmt.Sprintf("The report of %s (version %d) is queued for delivery again.", rep.Month, rep.Version))
}

func (c *Console) verifyReport(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	v, err := c.svc.VerifyReport(r.Context(), id)
	if err != nil {
		c.showReports(w, r, nil, err)
		return
	}
	c.showReports(w, r, &v, nil)
}

type customersData struct {
	Rules    []service.CustomerRule
	Types    []string
	VCenters []service.Product
}

func (c *Console) customers(w http.ResponseWriter, r *http.Request) { c.showCustomers(w, r, nil) }

func (c *Console) showCustomers(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	d := customersData{Types: service.CustomerObjectTypes()}
	rs, lerr := c.svc.CustomerRules(ctx)
	if lerr != nil && err == nil {
		err = lerr
	}
	d.Rules = rs
	ps, lerr := c.svc.Products(ctx)
	if lerr != nil && err == nil {
		err = lerr
	}
	for _, p := range ps {
		if p.Kind == "vcenter" && p.InstanceID != "" {
			d.VCenters = append(d.VCenters, p)
		}
	}
	c.render(w, r, "customers", "Customer rules", d, err)
}

func (c *Console) addCustomer(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showCustomers(w, r, err)
		return
	}
	f := r.PostForm
	in := service.CustomerRuleInput{Label: strings.TrimSpace(f.Get("label")), ObjectType: f.Get("object_type"), ObjectName: strings.TrimSpace(f.Get("object_name"))}
	if v := f.Get("vcenter_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			c.showCustomers(w, r, service.Invalid("vcenter: %q is not a product id", v))
			return
		}
		in.VCenterID = id
	}
	rule, err := c.svc.AddCustomerRule(r.Context(), actor(r), in)
	if err != nil {
		c.showCustomers(w, r, err)
		return
	}
	ui.Done(w, r, "/customers", fmt.Sprintf("The usage of %s %q is now labelled %q.", rule.ObjectType, rule.ObjectName, rule.Label))
}

func (c *Console) removeCustomer(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	if err == nil {
		err = c.svc.RemoveCustomerRule(r.Context(), actor(r), id)
	}
	if err != nil {
		c.showCustomers(w, r, err)
		return
	}
	ui.Done(w, r, "/customers", fmt.Sprintf("Rule %d removed.", id))
}

type licencesData struct {
	Licences   []service.License
	Categories []string
}

func (c *Console) licences(w http.ResponseWriter, r *http.Request) { c.showLicences(w, r, nil) }

func (c *Console) showLicences(w http.ResponseWriter, r *http.Request, err error) {
	ls, lerr := c.svc.LicenseCategories(r.Context())
	if lerr != nil && err == nil {
		err = lerr
	}
	c.render(w, r, "licences", "Licences", licencesData{Licences: ls, Categories: service.Categories()}, err)
}

func (c *Console) setLicence(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showLicences(w, r, err)
		return
	}
	f := r.PostForm
	var from *time.Time
	if v := strings.TrimSpace(f.Get("from")); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, time.UTC)
		if err != nil {
			c.showLicences(w, r, service.Invalid("from: %q is not a date and hour (UTC)", v))
			return
		}
		from = &t
	}
	key, cat := f.Get("key"), f.Get("category")
	if err := c.svc.SetLicenseCategory(r.Context(), actor(r), key, cat, from); err != nil {
		c.showLicences(w, r, err)
		return
	}
	ui.Done(w, r, "/licences", fmt.Sprintf("Licence %s is now in category %s.", key, cat))
}

type registrationData struct {
	Info     service.ApplianceInfo
	Programs []string
}

func (c *Console) registration(w http.ResponseWriter, r *http.Request) { c.showRegistration(w, r, nil) }

func (c *Console) showRegistration(w http.ResponseWriter, r *http.Request, err error) {
	info, lerr := c.svc.Appliance(r.Context())
	if lerr != nil && err == nil {
		err = lerr
	}
	c.render(w, r, "registration", "Registration", registrationData{Info: info, Programs: service.Programs()}, err)
}

// register records the contract and programme as `usagemeter register`
// does.
func (c *Console) register(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showRegistration(w, r, err)
		return
	}
	contract, program := strings.TrimSpace(r.PostForm.Get("contract")), r.PostForm.Get("program")
	if err := c.svc.Register(r.Context(), actor(r), contract, program); err != nil {
		c.showRegistration(w, r, err)
		return
	}
	ui.Done(w, r, "/registration", fmt.Sprintf("Registered: contract %s, programme %s.", contract, program))
}

func (c *Console) settings(w http.ResponseWriter, r *http.Request) {
	s, err := c.svc.Settings(r.Context())
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.render(w, r, "settings", "Settings", s, nil)
}

type auditData struct {
	Entries        []store.AuditEntry
	Actor, Action  string
	Before, Older  int64
	AuditPageLimit int
}

const auditLimit = 100

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := auditData{Actor: q.Get("actor"), Action: q.Get("action"), AuditPageLimit: auditLimit}
	var err error
	if v := q.Get("before"); v != "" {
		if d.Before, err = strconv.ParseInt(v, 10, 64); err != nil {
			err = service.Invalid("before: %q is not an entry number", v)
		}
	}
	if err == nil {
		d.Entries, err = c.svc.Audit(r.Context(), store.AuditFilter{Actor: d.Actor, Action: d.Action, Before: d.Before, Limit: auditLimit})
	}
	if n := len(d.Entries); n == auditLimit {
		d.Older = d.Entries[n-1].ID
	}
	c.render(w, r, "audit", "Audit log", d, err)
}

type accountData struct {
	User   auth.User
	Tokens []store.APIToken
	New    *auth.NewToken // just created: shown this once
}

func (c *Console) account(w http.ResponseWriter, r *http.Request) { c.showAccount(w, r, nil, nil) }

func (c *Console) showAccount(w http.ResponseWriter, r *http.Request, nt *auth.NewToken, err error) {
	u, _ := auth.UserFrom(r.Context())
	ts, lerr := c.am.Tokens(r.Context())
	if lerr != nil && err == nil {
		err = lerr
	}
	c.render(w, r, "account", "Account", accountData{User: u, Tokens: ts, New: nt}, err)
}

func (c *Console) changePassword(w http.ResponseWriter, r *http.Request) {
	err := ui.Form(w, r)
	f := r.PostForm
	if err == nil && f.Get("new") != f.Get("repeat") {
		err = service.Invalid("the new password and its repetition differ")
	}
	u, _ := auth.UserFrom(r.Context())
	if err == nil {
		err = c.am.ChangePassword(r.Context(), u, f.Get("current"), f.Get("new"))
	}
	if err != nil {
		c.showAccount(w, r, nil, err)
		return
	}
	c.am.Logout(w, r)
	ui.Done(w, r, "/login", "Password changed: every session of "+u.Username+" has ended. Log in with the new password.")
}

func (c *Console) createToken(w http.ResponseWriter, r *http.Request) {
	if err := ui.Form(w, r); err != nil {
		c.showAccount(w, r, nil, err)
		return
	}
	u, _ := auth.UserFrom(r.Context())
	nt, err := c.am.CreateToken(r.Context(), u, r.PostForm.Get("name"))
	if err != nil {
		c.showAccount(w, r, nil, err)
		return
	}
	// Shown on this response only (no redirect: the token is never stored
	// in clear, not even in a flash cookie).
	c.showAccount(w, r, &nt, nil)
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, err := idOf(r)
	u, _ := auth.UserFrom(r.Context())
	if err == nil {
		err = c.am.RevokeToken(r.Context(), u, id)
	}
	if err != nil {
		c.showAccount(w, r, nil, err)
		return
	}
	ui.Done(w, r, "/account", fmt.Sprintf("Token %d revoked: it is refused from now on.", id))
}
