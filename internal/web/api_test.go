package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	govsim "github.com/vmware/govmomi/simulator"

	"github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

const vcUUID = "5003c0de-aaaa-4bbb-8ccc-00000000f015"

func newVCSim(t *testing.T) *simulator.Simulator {
	t.Helper()
	vc, err := simulator.New(simulator.Options{Clusters: 1, HostsPerCluster: 2, InstanceUUID: vcUUID, Shape: func(m *govsim.Model) { m.Machine = 2 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vc.Close)
	return vc
}

// auditHas fails unless the audit log has an entry of action by actor
// with ok.
func (e *env) auditHas(action, actor string, ok bool) store.AuditEntry {
	e.t.Helper()
	es, err := e.app.Store.Audit(context.Background(), store.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range es {
		if a.Action == action && a.Actor == actor && a.OK == ok {
			return a
		}
	}
	e.t.Fatalf("no audit entry %s by %s (ok %v) in %+v", action, actor, ok, es)
	return store.AuditEntry{}
}

// collect collects product id's hour as the daemon would.
func (e *env) collect(id int64, hour time.Time) {
	e.t.Helper()
	ctx := context.Background()
	d, err := appliance.NewDaemon(e.app, nil, e.clock.Now)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := e.app.Store.Product(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if r := d.Scheduler().CollectProduct(ctx, p, hour); r.Err != nil || r.Skipped != "" || r.Merge.Observations == 0 {
		e.t.Fatalf("collecting %s: %v (skipped %q, %d observations)", hour, r.Err, r.Skipped, r.Merge.Observations)
	}
}

// TestProductsAPI: a vCenter (the govmomi simulator) is previewed, refused
// until its thumbprint is accepted, added, edited, tested, collected,
// deactivated, reactivated and removed through the API; bad input gets a
// clear JSON error and changes nothing; the password never comes back;
// every change is audited under the admin's name.
func TestProductsAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	vc := newVCSim(t)
	e.secrets = append(e.secrets, vc.Password())
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)

	// Certificate preview.
	r := e.do(nil, "POST", Prefix+"/certificate", map[string]string{"kind": "vcenter"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "endpoint") {
		t.Fatalf("preview without an endpoint: %q", msg)
	}
	r = e.do(nil, "POST", Prefix+"/certificate", map[string]string{"kind": "vcentre", "endpoint": vc.URL()})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, `kind "vcentre"`) {
		t.Fatalf("unknown kind: %q", msg)
	}
	var cert service.Certificate
	r = e.do(nil, "POST", Prefix+"/certificate", map[string]string{"kind": "vcenter", "endpoint": vc.URL()})
	mustStatus(t, r, http.StatusOK)
	r.json(t, &cert)
	if cert.Thumbprint != vc.Thumbprint() || cert.Trust != "untrusted" {
		t.Fatalf("preview: %+v, want thumbprint %s, untrusted", cert, vc.Thumbprint())
	}

	// Add: refused until the thumbprint is accepted, with the certificate.
	in := map[string]any{"kind": "vcenter", "endpoint": vc.URL(), "username": vc.User(), "password": vc.Password()}
	r = e.do(nil, "POST", Prefix+"/products", in)
	mustStatus(t, r, http.StatusConflict)
	var refused struct {
		Error       string              `json:"error"`
		Certificate service.Certificate `json:"certificate"`
	}
	r.json(t, &refused)
	if !strings.Contains(refused.Error, "not trusted") || refused.Certificate.Thumbprint != vc.Thumbprint() {
		t.Fatalf("untrusted add: %s", r.body)
	}
	e.auditHas("product.add", adminUser, false)

	for name, bad := range map[string]struct {
		body any
		want string
	}{
		"no kind":          {map[string]any{"endpoint": vc.URL()}, "kind and endpoint are required"},
		"unknown kind":     {map[string]any{"kind": "nope", "endpoint": vc.URL()}, `kind "nope" is not a product kind`},
		"no password":      {map[string]any{"kind": "vcenter", "endpoint": vc.URL(), "username": "u"}, "needs its password"},
		"unknown field":    {`{"kind":"vcenter","endpoint":"x","colour":"red"}`, `unknown field "colour"`},
		"not JSON":         {`{"kind":`, "request body"},
		"two values":       {`{"kind":"vcenter"} {}`, "more than one JSON value"},
		"options not JSON": {map[string]any{"kind": "vcenter", "endpoint": vc.URL(), "options": []int{1}}, "options"},
	} {
		r := e.do(nil, "POST", Prefix+"/products", bad.body)
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: status %d %s", name, r.StatusCode, r.body)
		}
		if msg := r.errorText(t); !strings.Contains(msg, bad.want) {
			t.Errorf("%s: %q, want %q", name, msg, bad.want)
		}
	}
	r = e.do(nil, "POST", Prefix+"/products", `{}`, header("Content-Type", "text/plain"))
	mustStatus(t, r, http.StatusUnsupportedMediaType)

	in["accept_thumbprint"] = strings.ToLower(strings.ReplaceAll(vc.Thumbprint(), ":", ""))
	in["tanzu_metric"] = "cores"
	var added service.AddResult
	r = e.do(nil, "POST", Prefix+"/products", in)
	mustStatus(t, r, http.StatusCreated)
	r.json(t, &added)
	p := added.Product
	if p.ID == 0 || p.InstanceID != vcUUID || !p.HasPassword || p.Username != vc.User() || added.Identity.InstanceID != vcUUID || !p.Active {
		t.Fatalf("added: %s", r.body)
	}
	if strings.Contains(string(r.body), `"password"`) {
		t.Fatalf("the added product carries a password field: %s", r.body)
	}
	e.auditHas("product.add", adminUser, true)
	// The same instance again is refused.
	r = e.do(nil, "POST", Prefix+"/products", in)
	if r.StatusCode != http.StatusConflict && r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the same vCenter twice: %d %s", r.StatusCode, r.body)
	}
	if msg := r.errorText(t); !strings.Contains(msg, vcUUID) && !strings.Contains(msg, "already") {
		t.Fatalf("the same vCenter twice: %q", msg)
	}

	var list []service.Product
	e.do(nil, "GET", Prefix+"/products", nil).json(t, &list)
	if len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("products: %+v", list)
	}
	path := fmt.Sprintf("%s/products/%d", Prefix, p.ID)
	mustStatus(t, e.do(nil, "GET", path, nil), http.StatusOK)
	mustStatus(t, e.do(nil, "GET", Prefix+"/products/999", nil), http.StatusNotFound)
	r = e.do(nil, "GET", Prefix+"/products/abc", nil)
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, `"abc"`) {
		t.Fatalf("bad id: %q", msg)
	}

	// Edit: a wrong password is refused before it is stored.
	r = e.do(nil, "PATCH", path, map[string]any{"password": "Wrong-Passw0rd"})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.errorText(t); strings.Contains(msg, "Wrong-Passw0rd") || !strings.Contains(msg, "password") {
		t.Fatalf("a wrong password: %q", msg)
	}
	if stored, _ := e.app.Store.Product(context.Background(), p.ID); stored.Password.Reveal() != vc.Password() {
		t.Fatal("a refused password was stored")
	}
	e.auditHas("product.update", adminUser, false)
	mustStatus(t, e.do(nil, "PATCH", path, map[string]any{}), http.StatusBadRequest)
	r = e.do(nil, "PATCH", path, map[string]any{"options": map[string]any{"tanzu_metric": "vram"}})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "tanzu_metric") {
		t.Fatalf("a billing setting in options: %q", msg)
	}
	r = e.do(nil, "PATCH", path, map[string]any{"tanzu_metric": "vram", "from": t0.Add(48 * time.Hour)})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "in the future") {
		t.Fatalf("a change from the future: %q", msg)
	}
	var edited struct {
		Options map[string]string `json:"options"`
	}
	r = e.do(nil, "PATCH", path, map[string]any{"password": vc.Password(), "tanzu_metric": "vram"})
	mustStatus(t, r, http.StatusOK)
	r.json(t, &edited)
	if edited.Options["tanzu_metric"] != "vram" {
		t.Fatalf("edited: %s", r.body)
	}
	if a := e.auditHas("product.update", adminUser, true); !strings.Contains(a.Detail, "password") || !strings.Contains(a.Detail, "tanzu_metric") {
		t.Fatalf("audit of the edit: %+v", a)
	}

	// Test.
	var tr service.TestResult
	r = e.do(nil, "POST", path+"/test", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &tr)
	if !tr.OK || tr.Identity == nil || tr.Identity.InstanceID != vcUUID || tr.Certificate == nil || tr.Certificate.Trust != "accepted" {
		t.Fatalf("test: %s", r.body)
	}
	vc.RefuseLogins(true)
	e.do(nil, "POST", path+"/test", nil).json(t, &tr)
	if tr.OK || !strings.Contains(tr.Error, "login") {
		t.Fatalf("test with logins refused: %+v", tr)
	}
	vc.RefuseLogins(false)

	// Collection shows in the journal and the month so far.
	hour := t0.Truncate(time.Hour).Add(-time.Hour)
	e.collect(p.ID, hour)
	var page service.JournalPage
	r = e.do(nil, "GET", fmt.Sprintf("%s/journal?product=%d&state=done&limit=10", Prefix, p.ID), nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &page)
	if page.ProductTotal == nil || *page.ProductTotal != 1 || len(page.Entries) != 1 || page.Next != "" || page.Previous != "" || !page.Entries[0].Hour.Equal(hour) || page.Entries[0].Objects == nil || *page.Entries[0].Objects == 0 ||
		page.Entries[0].DurationMS == nil {
		t.Fatalf("journal: %s", r.body)
	}
	for q, want := range map[string]string{"state=bogus": `state "bogus"`, "limit=x": `limit "x"`, "limit=501": "limit 501", "before=yesterday": `"yesterday" is not one of the journal's`,
		"after=1-x": `"1-x"`, "before=1-1&after=2-2": "not both", "product=-1": `product "-1"`} {
		r := e.do(nil, "GET", Prefix+"/journal?"+q, nil)
		mustStatus(t, r, http.StatusBadRequest)
		if msg := r.errorText(t); !strings.Contains(msg, want) {
			t.Errorf("journal?%s: %q", q, msg)
		}
	}
	var mtd service.MonthToDate
	r = e.do(nil, "GET", Prefix+"/month-to-date", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &mtd)
	if mtd.Month != "2026-05" || len(mtd.Products) != 1 || len(mtd.Products[0].Metrics) == 0 || len(mtd.Products[0].Metrics[0].Days) != 1 ||
		mtd.Products[0].Metrics[0].Days[0].Day != "2026-05-04" || mtd.Hours != 82 {
		t.Fatalf("month to date: %s", r.body)
	}
	// One hour collected: the month's average is its quantity over the 82
	// hours gone, the day's over the 10 hours of May 4 gone.
	for _, m := range mtd.Products[0].Metrics {
		if d := m.Days[0]; d.Average <= 0 || math.Abs(d.Average*10-m.Average*82) > 1e-6*d.Average || d.Objects != m.Objects {
			t.Fatalf("%s: month %v, day %+v", m.Metric, m.Average, d)
		}
	}
	r = e.do(nil, "GET", Prefix+"/month-to-date.csv", nil)
	mustStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.HasPrefix(string(r.body), "month,product_id,product,endpoint,metric,unit,day,average,objects\n") ||
		!strings.Contains(string(r.body), "2026-05,1,") || !strings.Contains(string(r.body), ",2026-05-04,") {
		t.Fatalf("CSV (%s):\n%s", ct, r.body)
	}

	// Deactivate, reactivate.
	var st service.Product
	e.do(nil, "POST", path+"/deactivate", nil).json(t, &st)
	if st.Active || st.DeactivatedAt == nil {
		t.Fatalf("deactivated: %+v", st)
	}
	e.auditHas("product.deactivate", adminUser, true)
	e.do(nil, "POST", path+"/reactivate", nil).json(t, &st)
	if !st.Active {
		t.Fatalf("reactivated: %+v", st)
	}
	e.auditHas("product.reactivate", adminUser, true)
	mustStatus(t, e.do(nil, "POST", Prefix+"/products/999/deactivate", nil), http.StatusNotFound)

	// Remove: the history is kept.
	var rm service.RemoveResult
	r = e.do(nil, "DELETE", path, nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &rm)
	if rm.Deleted {
		t.Fatalf("a product with history deleted: %s", r.body)
	}
	e.auditHas("product.remove", adminUser, true)
	mustStatus(t, e.do(nil, "DELETE", Prefix+"/products/999", nil), http.StatusNotFound)

	// The audit log as the API shows it.
	var audit []store.AuditEntry
	r = e.do(nil, "GET", Prefix+"/audit?action=product.&limit=50", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &audit)
	if len(audit) < 7 || audit[0].Action != "product.remove" || audit[0].Actor != adminUser || audit[0].Remote != "127.0.0.1" {
		t.Fatalf("audit: %s", r.body)
	}
	mustStatus(t, e.do(nil, "GET", Prefix+"/audit?before=x", nil), http.StatusBadRequest)
}

// TestAdminAPI: appliance, kinds, alerts, customer rules, licences,
// settings and the caller, with bad input and audit.
func TestAdminAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	ctx := context.Background()

	var me map[string]any
	e.do(nil, "GET", Prefix+"/me", nil).json(t, &me)
	if me["username"] != adminUser || me["via"] != "session" {
		t.Fatalf("me: %v", me)
	}
	var info service.ApplianceInfo
	r := e.do(nil, "GET", Prefix+"/appliance", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &info)
	if info.Version != "test" || info.ApplianceID == "" || info.Ready || info.ContractID != "" || info.Health.Status != "ok" ||
		info.NextReportMonth != "2026-05" || info.NextReport == nil || !info.NextReport.Equal(time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("appliance: %s", r.body)
	}
	// Registration: bad input refused and audited, then recorded.
	r = e.do(nil, "POST", Prefix+"/registration", map[string]string{"contract_id": " ", "program": "rental"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "contract") {
		t.Fatalf("empty contract: %q", msg)
	}
	r = e.do(nil, "POST", Prefix+"/registration", map[string]string{"contract_id": "C-15", "program": "leasing"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "rental or sovereign-cloud") {
		t.Fatalf("bad programme: %q", msg)
	}
	e.auditHas("appliance.register", adminUser, false)
	r = e.do(nil, "POST", Prefix+"/registration", map[string]string{"contract_id": " C-15 ", "program": "sovereign-cloud"})
	mustStatus(t, r, http.StatusOK)
	r.json(t, &info)
	if info.ContractID != "C-15" || info.Program != "sovereign-cloud" || info.RegisteredAt == nil || !info.RegisteredAt.Equal(e.clock.Now()) {
		t.Fatalf("registered: %s", r.body)
	}
	if a := e.auditHas("appliance.register", adminUser, true); a.Target != "contract C-15" || a.Remote != "127.0.0.1" {
		t.Fatalf("audit of the registration: %+v", a)
	}

	var kinds []service.Kind
	e.do(nil, "GET", Prefix+"/kinds", nil).json(t, &kinds)
	if len(kinds) < 10 {
		t.Fatalf("kinds: %+v", kinds)
	}

	// Alerts: open and history.
	if _, err := e.app.Store.RaiseAlert(ctx, store.Alert{Key: "collection_failed:9", Kind: "collection_failed", LastError: "connection refused", OpenedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	var alerts []service.Alert
	e.do(nil, "GET", Prefix+"/alerts", nil).json(t, &alerts)
	if len(alerts) != 1 || alerts[0].Key != "collection_failed:9" {
		t.Fatalf("open alerts: %+v", alerts)
	}
	if _, err := e.app.Store.ResolveAlert(ctx, "collection_failed:9", t0.Add(time.Hour), func(store.Alert) *store.Mail { return nil }); err != nil {
		t.Fatal(err)
	}
	e.do(nil, "GET", Prefix+"/alerts?state=open", nil).json(t, &alerts)
	if len(alerts) != 0 {
		t.Fatalf("open alerts after resolving: %+v", alerts)
	}
	e.do(nil, "GET", Prefix+"/alerts?state=all", nil).json(t, &alerts)
	if len(alerts) != 1 || alerts[0].ResolvedAt == nil {
		t.Fatalf("alert history: %+v", alerts)
	}
	mustStatus(t, e.do(nil, "GET", Prefix+"/alerts?state=closed", nil), http.StatusBadRequest)

	// Customer rules.
	for _, bad := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"object_type": "cluster", "object_name": "c1"}, "label"},
		{map[string]any{"label": "ACME", "object_type": "galaxy", "object_name": "c1"}, `object_type "galaxy"`},
		{map[string]any{"label": "ACME", "object_type": "cluster"}, "object_name"},
		{map[string]any{"label": "ACME", "object_type": "folder", "object_name": "f", "vcenter_id": 1}, "vcenter_id goes with"},
		{map[string]any{"label": "ACME", "object_type": "cluster", "object_name": "c", "vcenter_id": 77}, "vcenter_id 77"},
	} {
		r := e.do(nil, "POST", Prefix+"/customer-rules", bad.body)
		mustStatus(t, r, http.StatusBadRequest)
		if msg := r.errorText(t); !strings.Contains(msg, bad.want) {
			t.Errorf("%v: %q", bad.body, msg)
		}
	}
	var rule service.CustomerRule
	r = e.do(nil, "POST", Prefix+"/customer-rules", map[string]any{"label": "ACME", "object_type": "cluster", "object_name": "cluster-a"})
	mustStatus(t, r, http.StatusCreated)
	r.json(t, &rule)
	if rule.ID == 0 || rule.Label != "ACME" {
		t.Fatalf("rule: %s", r.body)
	}
	r = e.do(nil, "POST", Prefix+"/customer-rules", map[string]any{"label": "Other", "object_type": "cluster", "object_name": "cluster-a"})
	mustStatus(t, r, http.StatusConflict)
	if msg := r.errorText(t); !strings.Contains(msg, `already labelled "ACME"`) {
		t.Fatalf("duplicate rule: %q", msg)
	}
	var rules []service.CustomerRule
	e.do(nil, "GET", Prefix+"/customer-rules", nil).json(t, &rules)
	if len(rules) != 1 {
		t.Fatalf("rules: %+v", rules)
	}
	mustStatus(t, e.do(nil, "DELETE", fmt.Sprintf("%s/customer-rules/%d", Prefix, rule.ID), nil), http.StatusNoContent)
	mustStatus(t, e.do(nil, "DELETE", fmt.Sprintf("%s/customer-rules/%d", Prefix, rule.ID), nil), http.StatusNotFound)
	e.auditHas("customer.add", adminUser, true)
	e.auditHas("customer.add", adminUser, false)
	e.auditHas("customer.remove", adminUser, true)

	// Licences.
	if err := e.app.Store.NoteLicense(ctx, "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "vsphere8.enterprisePlus"); err != nil {
		t.Fatal(err)
	}
	var ls []service.License
	e.do(nil, "GET", Prefix+"/licenses", nil).json(t, &ls)
	if len(ls) != 1 || ls[0].Category != "rental" {
		t.Fatalf("licences: %+v", ls)
	}
	lpath := Prefix + "/licenses/AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"
	r = e.do(nil, "PUT", lpath, map[string]any{"category": "borrowed"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, `category "borrowed"`) {
		t.Fatalf("bad category: %q", msg)
	}
	mustStatus(t, e.do(nil, "PUT", lpath, map[string]any{"category": "demo", "from": t0.Add(24 * time.Hour)}), http.StatusBadRequest)
	var l service.License
	r = e.do(nil, "PUT", lpath, map[string]any{"category": "demo"})
	mustStatus(t, r, http.StatusOK)
	r.json(t, &l)
	if l.Category != "demo" {
		t.Fatalf("licence: %s", r.body)
	}
	e.auditHas("license.set_category", adminUser, true)

	// Settings: secrets never shown.
	var s service.Settings
	r = e.do(nil, "GET", Prefix+"/settings", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &s)
	if !strings.Contains(s.YAML, "password: <secret>") || !strings.Contains(string(r.body), "<secret>") || s.Config["smtp"] == nil {
		t.Fatalf("settings: %s", r.body)
	}
	if strings.Contains(string(r.body), e.app.Config.Database.URL.Reveal()) {
		t.Fatal("settings show the database URL")
	}
}

// TestReportsAPI: a registered appliance with a collected April generates
// the month's report, which is listed, downloaded encrypted and plain,
// verified and sent again; a path in the reports table that leaves the
// reports directory is never served.
func TestReportsAPI(t *testing.T) {
	keyDir := t.TempDir()
	e := newEnv(t, envOptions{config: func(c *config.Config) {
		c.Report.RecipientKeys = []string{writeRecipientKey(t, keyDir)}
		c.Report.To = []string{"usage@aggregator.example"}
	}})
	vc := newVCSim(t)
	e.secrets = append(e.secrets, vc.Password())
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	ctx := context.Background()

	r := e.do(nil, "POST", Prefix+"/reports", map[string]string{"month": "2026-04"})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.errorText(t); !strings.Contains(msg, "not registered") {
		t.Fatalf("unregistered: %q", msg)
	}
	if err := e.app.Store.Register(ctx, "C-0015", "rental", t0.AddDate(0, -2, 0)); err != nil {
		t.Fatal(err)
	}
	r = e.do(nil, "POST", Prefix+"/reports", map[string]string{"month": "April"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "month") {
		t.Fatalf("bad month: %q", msg)
	}
	r = e.do(nil, "POST", Prefix+"/reports", map[string]string{"month": "2026-05"})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.errorText(t); !strings.Contains(msg, "not over") {
		t.Fatalf("current month: %q", msg)
	}
	r = e.do(nil, "POST", Prefix+"/reports", map[string]string{"month": "2026-04"})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.errorText(t); !strings.Contains(msg, "no usage") {
		t.Fatalf("empty month: %q", msg)
	}

	var added service.AddResult
	r = e.do(nil, "POST", Prefix+"/products", map[string]any{"kind": "vcenter", "endpoint": vc.URL(), "username": vc.User(), "password": vc.Password(),
		"accept_thumbprint": vc.Thumbprint()})
	mustStatus(t, r, http.StatusCreated)
	r.json(t, &added)
	if _, err := e.app.Store.Pool().Exec(ctx, `UPDATE products SET created_at = $1`, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for h := time.Date(2026, 4, 30, 20, 0, 0, 0, time.UTC); h.Before(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); h = h.Add(time.Hour) {
		e.collect(added.Product.ID, h)
	}

	var rep service.Report
	r = e.do(nil, "POST", Prefix+"/reports", map[string]string{"month": "2026-04"})
	mustStatus(t, r, http.StatusOK)
	r.json(t, &rep)
	if rep.Month != "2026-04" || rep.Version != 1 || !rep.Encrypted || !strings.HasSuffix(rep.FileName, ".gpg") || len(rep.Channels) != 1 || rep.Channels[0].State != "pending" {
		t.Fatalf("generated: %s", r.body)
	}
	e.auditHas("report.generate", adminUser, true)
	var reps []service.Report
	e.do(nil, "GET", Prefix+"/reports", nil).json(t, &reps)
	if len(reps) != 1 || reps[0].ID != rep.ID {
		t.Fatalf("reports: %+v", reps)
	}
	rpath := fmt.Sprintf("%s/reports/%d", Prefix, rep.ID)
	mustStatus(t, e.do(nil, "GET", rpath, nil), http.StatusOK)
	mustStatus(t, e.do(nil, "GET", Prefix+"/reports/4242", nil), http.StatusNotFound)

	r = e.do(nil, "GET", rpath+"/bundle", nil)
	mustStatus(t, r, http.StatusOK)
	if r.Header.Get("Content-Type") != "application/pgp-encrypted" || !strings.Contains(r.Header.Get("Content-Disposition"), rep.FileName) ||
		len(r.body) == 0 || r.body[0] == 0x1f {
		t.Fatalf("bundle: %v, %d bytes", r.Header, len(r.body))
	}
	r = e.do(nil, "GET", rpath+"/plain", nil)
	mustStatus(t, r, http.StatusOK)
	if r.Header.Get("Content-Type") != "application/gzip" || len(r.body) < 2 || r.body[0] != 0x1f || r.body[1] != 0x8b {
		t.Fatalf("plain bundle: %v", r.Header)
	}
	e.auditHas("report.download", adminUser, true)
	e.auditHas("report.download_plain", adminUser, true)

	var v service.Verification
	r = e.do(nil, "GET", rpath+"/verify", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &v)
	if !v.OK || !v.BundleIntact || v.Files < 3 || v.FiguresSHA256 != rep.FiguresSHA256 {
		t.Fatalf("verify: %s", r.body)
	}

	r = e.do(nil, "POST", rpath+"/resend", nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &rep)
	if rep.Channels[0].Name != "email" || rep.Channels[0].State != "queued" {
		t.Fatalf("resent: %s", r.body)
	}
	e.auditHas("report.resend", adminUser, true)

	// A changed file on disk fails verification.
	var path string
	if err := e.app.Store.Pool().QueryRow(ctx, `SELECT path FROM reports WHERE id = $1`, rep.ID).Scan(&path); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(append([]byte{}, orig...), 'x'), 0o600); err != nil {
		t.Fatal(err)
	}
	e.do(nil, "GET", rpath+"/verify", nil).json(t, &v)
	if v.OK || v.BundleIntact || !strings.Contains(v.Error, "changed") {
		t.Fatalf("verify of a changed bundle: %+v", v)
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	// Path traversal: ids are numbers, and a stored path must stay in
	// data_dir/reports (a regular file, not a link out of it).
	for _, p := range []string{"/reports/..%2F..%2Fetc%2Fpasswd/bundle", "/reports/1%2F..%2F2/plain", "/reports/-1/bundle"} {
		r := e.do(nil, "GET", Prefix+p, nil)
		if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d %s", p, r.StatusCode, r.body)
		}
	}
	secret := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(secret, []byte("outside the reports directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	reportsDir := filepath.Dir(path)
	link := filepath.Join(reportsDir, "link.tar.gz.gpg")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{secret, reportsDir + "/../../" + filepath.Base(secret), link, reportsDir + "/sub/../../x.gpg"} {
		if _, err := e.app.Store.Pool().Exec(ctx, `UPDATE reports SET path = $1 WHERE id = $2`, bad, rep.ID); err != nil {
			t.Fatal(err)
		}
		for _, which := range []string{"/bundle", "/plain"} {
			r := e.do(nil, "GET", rpath+which, nil)
			mustStatus(t, r, http.StatusNotFound)
			if strings.Contains(string(r.body), "outside the reports directory") {
				t.Fatalf("%s served %s", which, bad)
			}
			r.errorText(t)
		}
	}
}

// TestJournalAPIPaging: /journal pages by cursor: following next from the
// newest page reads every run once, in order (hour newest first, then
// product id, highest first), and previous leads back; with a product or
// a state only theirs, with the product's total.
func TestJournalAPIPaging(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	ctx := context.Background()
	pool := e.app.Store.Pool()
	if _, err := pool.Exec(ctx, `INSERT INTO products (kind, endpoint, username) SELECT 'vcenter', 'https://vc' || g || '.example', 'meter' FROM generate_series(1, 3) g`); err != nil {
		t.Fatal(err)
	}
	// 3 products × 5 hours; product 2's third hour failed.
	start := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state, attempts, started_at, finished_at, error, objects)
	 SELECT p.id, h, CASE WHEN p.endpoint = 'https://vc2.example' AND h = $1::timestamptz + interval '2 hours' THEN 'failed' ELSE 'done' END, 1, h, h + interval '3 seconds',
	        CASE WHEN p.endpoint = 'https://vc2.example' AND h = $1::timestamptz + interval '2 hours' THEN 'connection refused' END, 10
	   FROM products p, generate_series($1::timestamptz, $1::timestamptz + interval '4 hours', interval '1 hour') h`, start); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := pool.QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM products`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	page := func(q string) service.JournalPage {
		t.Helper()
		var pg service.JournalPage
		r := e.do(nil, "GET", Prefix+"/journal?"+q, nil)
		mustStatus(t, r, http.StatusOK)
		r.json(t, &pg)
		return pg
	}
	key := func(je service.JournalEntry) string { return fmt.Sprintf("%s/%d", je.Hour.Format("15"), je.ProductID) }
	keys := func(es []service.JournalEntry) (ks []string) {
		for _, je := range es {
			ks = append(ks, key(je))
		}
		return ks
	}
	var want []string
	for h := 4; h >= 0; h-- {
		for i := len(ids) - 1; i >= 0; i-- {
			want = append(want, fmt.Sprintf("%02d/%d", h, ids[i]))
		}
	}
	var got []string
	var pages []service.JournalPage
	for pg := page("limit=4"); ; pg = page("limit=4&before=" + pg.Next) {
		pages = append(pages, pg)
		got = append(got, keys(pg.Entries)...)
		if (len(pages) == 1) != (pg.Previous == "") || pg.ProductTotal != nil || pg.Limit != 4 {
			t.Fatalf("page %d: %+v", len(pages), pg)
		}
		if pg.Next == "" || len(pages) > 10 {
			break
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || len(pages) != 4 {
		t.Fatalf("paging by next, %d pages:\n got %v\nwant %v", len(pages), got, want)
	}
	// previous from the third page is the second page.
	if back := page("limit=4&after=" + pages[2].Previous); fmt.Sprint(keys(back.Entries)) != fmt.Sprint(keys(pages[1].Entries)) || back.Next == "" || back.Previous == "" {
		t.Fatalf("previous of page 3: %v, want %v", keys(back.Entries), keys(pages[1].Entries))
	}
	// One product: its runs only, with its total.
	pg := page(fmt.Sprintf("product=%d&limit=2", ids[1]))
	if pg.ProductTotal == nil || *pg.ProductTotal != 5 || len(pg.Entries) != 2 || pg.Entries[0].ProductID != ids[1] || pg.Next == "" {
		t.Fatalf("product page: %+v", pg)
	}
	pg = page(fmt.Sprintf("product=%d&limit=2&before=%s", ids[1], pg.Next))
	if len(pg.Entries) != 2 || key(pg.Entries[0]) != fmt.Sprintf("02/%d", ids[1]) || pg.Entries[0].State != "failed" {
		t.Fatalf("product's second page: %+v", pg)
	}
	// One state.
	pg = page("state=failed")
	if len(pg.Entries) != 1 || pg.Entries[0].ProductID != ids[1] || pg.Entries[0].Error != "connection refused" || pg.Next != "" || pg.Previous != "" {
		t.Fatalf("failed runs: %+v", pg)
	}
}
