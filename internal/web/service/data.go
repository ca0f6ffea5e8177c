package service

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// JournalEntry is one product's hour (see store.JournalEntry).
type JournalEntry = store.JournalEntry

// JournalQuery selects a page of the collection journal (see
// store.JournalQuery): of one product (0: all), in one state ("": any),
// the runs older than Before or newer than After (nil: the newest).
type JournalQuery = store.JournalQuery

// JournalPage is a page of the collection journal, newest hour first
// (then by product id, highest first). Next, when set, is the cursor of
// the page of older runs (pass it as before=); Previous, of the page of
// newer runs (as after=). ProductTotal counts the runs of the one product
// asked for.
type JournalPage struct {
	Entries      []JournalEntry `json:"entries"`
	Limit        int            `json:"limit"`
	Next         string         `json:"next,omitempty"`
	Previous     string         `json:"previous,omitempty"`
	ProductTotal *int           `json:"product_total,omitempty"`
}

// JournalMaxLimit is the largest journal page.
const JournalMaxLimit = 500

// Journal lists collection runs, newest hour first, a page at a time by
// keyset (store.JournalKeyset): every page costs the same at hundreds of
// products and years of hours, and nothing counts every run.
func (s *Service) Journal(ctx context.Context, q JournalQuery) (JournalPage, error) {
	switch q.State {
	case "", "running", "done", "failed":
	default:
		return JournalPage{}, Invalid("state %q: want running, done or failed", q.State)
	}
	switch {
	case q.Limit < 0 || q.Limit > JournalMaxLimit:
		return JournalPage{}, Invalid("limit %d: want 1 to %d (0: 100)", q.Limit, JournalMaxLimit)
	case q.ProductID < 0:
		return JournalPage{}, Invalid("product %d: not a product id", q.ProductID)
	case q.Before != nil && q.After != nil:
		return JournalPage{}, Invalid("before and after: give one of them, not both")
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	pg, err := s.app.Store.JournalKeyset(ctx, q)
	if err != nil {
		return JournalPage{Entries: []JournalEntry{}, Limit: q.Limit}, err
	}
	out := JournalPage{Entries: pg.Entries, Limit: q.Limit}
	if out.Entries == nil {
		out.Entries = []JournalEntry{}
	}
	if pg.Older && len(pg.Entries) > 0 {
		out.Next = FormatJournalCursor(pg.Last)
	}
	if pg.Newer && len(pg.Entries) > 0 {
		out.Previous = FormatJournalCursor(pg.First)
	}
	if q.ProductID != 0 {
		out.ProductTotal = &pg.ProductTotal
	}
	return out, nil
}

// ParseJournalCursor reads a journal cursor, "UNIXHOUR-PRODUCT" as
// FormatJournalCursor writes it ("" is none).
func ParseJournalCursor(v string) (*store.JournalCursor, error) {
	if v == "" {
		return nil, nil
	}
	h, p, ok := strings.Cut(v, "-")
	sec, err1 := strconv.ParseInt(h, 10, 64)
	id, err2 := strconv.ParseInt(p, 10, 64)
	if !ok || err1 != nil || err2 != nil || id < 0 {
		return nil, Invalid("the page's place %q is not one of the journal's: start again from the newest", v)
	}
	return &store.JournalCursor{Hour: time.Unix(sec, 0).UTC(), ProductID: id}, nil
}

// FormatJournalCursor writes c for a link or the API's next and previous.
func FormatJournalCursor(c store.JournalCursor) string {
	return strconv.FormatInt(c.Hour.Unix(), 10) + "-" + strconv.FormatInt(c.ProductID, 10)
}

// Alert is an alert (see store.Alert).
type Alert = store.Alert

// Alerts lists the open alerts (open) or the history, newest first (the
// last 500).
func (s *Service) Alerts(ctx context.Context, open bool) ([]Alert, error) {
	var as []Alert
	var err error
	if open {
		as, err = s.app.Store.OpenAlerts(ctx)
	} else {
		as, err = s.app.Store.Alerts(ctx, 500)
	}
	if as == nil {
		as = []Alert{}
	}
	return as, err
}

// CustomerRule labels an object's usage with a customer.
type CustomerRule struct {
	ID         int64     `json:"id"`
	Label      string    `json:"label"`
	ObjectType string    `json:"object_type"`
	ObjectName string    `json:"object_name"`
	CreatedAt  time.Time `json:"created_at"`
}

// CustomerRuleInput is a rule to add. VCenterID binds a host, cluster or
// datacenter rule to that vCenter's object (by its instance UUID).
type CustomerRuleInput struct {
	Label      string `json:"label"`
	ObjectType string `json:"object_type"`
	ObjectName string `json:"object_name"`
	VCenterID  int64  `json:"vcenter_id,omitempty"`
}

// CustomerRules lists the rules, and the order in which they win.
func (s *Service) CustomerRules(ctx context.Context) ([]CustomerRule, error) {
	rs, err := s.app.Store.CustomerRules(ctx)
	out := make([]CustomerRule, 0, len(rs))
	for _, r := range rs {
		out = append(out, CustomerRule{r.ID, r.Label, r.ObjectType, r.ObjectName, r.CreatedAt})
	}
	return out, err
}

// CustomerObjectTypes are the object types a rule can name, the first
// winning when several match.
func CustomerObjectTypes() []string { return store.CustomerObjectTypes }

// AddCustomerRule adds a rule (`customer add`).
func (s *Service) AddCustomerRule(ctx context.Context, a Actor, in CustomerRuleInput) (r CustomerRule, err error) {
	defer func() {
		s.audit(ctx, a, "customer.add", fmt.Sprintf("%s %q", in.ObjectType, in.ObjectName), "label "+in.Label, err)
	}()
	switch {
	case strings.TrimSpace(in.Label) == "":
		return r, Invalid("label: the customer label is required")
	case !store.ValidCustomerObjectType(in.ObjectType):
		return r, Invalid("object_type %q: want one of %s", in.ObjectType, strings.Join(store.CustomerObjectTypes, ", "))
	case strings.TrimSpace(in.ObjectName) == "":
		return r, Invalid("object_name: the object's name is required")
	}
	name := in.ObjectName
	if in.VCenterID != 0 {
		if in.ObjectType != "host" && in.ObjectType != "cluster" && in.ObjectType != "datacenter" {
			return r, Invalid("vcenter_id goes with object_type host, cluster or datacenter (got %q)", in.ObjectType)
		}
		p, err := s.app.Store.Product(ctx, in.VCenterID)
		if errors.Is(err, store.ErrNotFound) {
			return r, Invalid("vcenter_id %d: no such product", in.VCenterID)
		}
		if err != nil {
			return r, err
		}
		if p.Kind != "vcenter" || p.InstanceID == "" {
			return r, Invalid("vcenter_id %d is not a vCenter with a known instance UUID", in.VCenterID)
		}
		name = store.ScopedObjectName(p.InstanceID, name)
	}
	id, err := s.app.Store.AddCustomerRule(ctx, store.CustomerRule{Label: in.Label, ObjectType: in.ObjectType, ObjectName: name})
	if err != nil {
		return r, rejected(err)
	}
	rs, err := s.CustomerRules(ctx)
	for _, x := range rs {
		if x.ID == id {
			return x, err
		}
	}
	return CustomerRule{ID: id, Label: strings.TrimSpace(in.Label), ObjectType: in.ObjectType, ObjectName: name}, err
}

// RemoveCustomerRule removes rule id.
func (s *Service) RemoveCustomerRule(ctx context.Context, a Actor, id int64) (err error) {
	defer func() { s.audit(ctx, a, "customer.remove", "rule "+strconv.FormatInt(id, 10), "", err) }()
	if err := s.app.Store.RemoveCustomerRule(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("customer rule", id)
		}
		return err
	}
	return nil
}

// License is a licence key seen by the collectors, and its category.
type License struct {
	Key       string    `json:"key"`
	Edition   string    `json:"edition"`
	Category  string    `json:"category"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LicenseCategories lists the licence keys seen (in the last 400 days:
// a year of reports can be regenerated) and their categories.
func (s *Service) LicenseCategories(ctx context.Context) ([]License, error) {
	if _, err := s.app.Store.SyncLicenses(ctx, s.now().AddDate(0, 0, -400)); err != nil {
		return nil, err
	}
	ls, err := s.app.Store.Licenses(ctx)
	out := make([]License, 0, len(ls))
	for _, l := range ls {
		out = append(out, License{l.Key, l.Edition, l.Category, l.UpdatedAt})
	}
	return out, err
}

// Categories are the licence categories an admin can set.
func Categories() []string { return store.LicenseCategories }

// SetLicenseCategory sets key's category from the hour from (nil: the
// current hour); hours before keep theirs (`license set`).
func (s *Service) SetLicenseCategory(ctx context.Context, a Actor, key, category string, from *time.Time) (err error) {
	defer func() { s.audit(ctx, a, "license.set_category", "licence "+key, "category "+category, err) }()
	valid := false
	for _, c := range store.LicenseCategories {
		valid = valid || c == category
	}
	if !valid {
		return Invalid("category %q: want %s", category, strings.Join(store.LicenseCategories, ", "))
	}
	if strings.TrimSpace(key) == "" {
		return Invalid("key: the licence key is required")
	}
	now := s.now()
	f := now.UTC().Truncate(time.Hour)
	if from != nil {
		if f, err = ChangeFrom(*from, now); err != nil {
			return err
		}
	}
	if err := s.app.Store.ChangeLicenseCategory(ctx, key, category, f, now); err != nil {
		return rejected(err)
	}
	return nil
}

// MonthToDate is the provider's clear-text view of the current month so
// far (not anonymised: it never leaves the appliance).
type MonthToDate struct {
	Month    string         `json:"month"` // YYYY-MM in report.timezone
	TimeZone string         `json:"time_zone"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"` // the current hour's start: hours before it
	Hours    int            `json:"hours"`
	Products []ProductMonth `json:"products"`
}

// ProductMonth is one product's figures so far.
type ProductMonth struct {
	ProductID int64         `json:"product_id"`
	Kind      string        `json:"kind"`
	Endpoint  string        `json:"endpoint"`
	Metrics   []MetricMonth `json:"metrics"`
}

// MetricMonth is one metric of a product so far: its average over the
// month's hours gone, the most objects seen on a day, and per day.
type MetricMonth struct {
	Metric  string     `json:"metric"`
	Unit    string     `json:"unit"`
	Average float64    `json:"average"`
	Objects int64      `json:"objects"`
	Days    []DayValue `json:"days"`
}

// DayValue is a metric's daily average.
type DayValue struct {
	Day     string  `json:"day"` // YYYY-MM-DD
	Average float64 `json:"average"`
	Objects int64   `json:"objects"`
}

// MonthToDate aggregates the current month (report.timezone) from its
// start to the current hour, per product and metric, with per-day figures.
func (s *Service) MonthToDate(ctx context.Context) (MonthToDate, error) {
	loc := s.app.Config.Location()
	now := s.now()
	m := store.MonthIn(now, loc)
	to := now.UTC().Truncate(time.Hour)
	out := MonthToDate{Month: m.String(), TimeZone: loc.String(), From: m.Start.UTC(), To: to, Hours: int(to.Sub(m.Start) / time.Hour), Products: []ProductMonth{}}
	if !to.After(m.Start) {
		return out, nil
	}
	figs, err := s.app.Store.DailyFigures(ctx, m.Start, to, loc)
	if err != nil {
		return out, err
	}
	infos, err := s.app.Store.ProductInfos(ctx)
	if err != nil {
		return out, err
	}
	for _, f := range figs {
		n := len(out.Products)
		if n == 0 || out.Products[n-1].ProductID != f.ProductID {
			pi := infos[f.ProductID]
			out.Products = append(out.Products, ProductMonth{ProductID: f.ProductID, Kind: pi.Kind, Endpoint: pi.Endpoint})
			n++
		}
		p := &out.Products[n-1]
		k := len(p.Metrics)
		if k == 0 || p.Metrics[k-1].Metric != f.Metric || p.Metrics[k-1].Unit != f.Unit {
			p.Metrics = append(p.Metrics, MetricMonth{Metric: f.Metric, Unit: f.Unit})
			k++
		}
		mm := &p.Metrics[k-1]
		mm.Average += f.QuantityHours // divided by the hours below
		mm.Objects = max(mm.Objects, f.Objects)
		mm.Days = append(mm.Days, DayValue{Day: f.Day.Format(time.DateOnly), Average: f.Average, Objects: f.Objects})
	}
	for i := range out.Products {
		for j := range out.Products[i].Metrics {
			mm := &out.Products[i].Metrics[j]
			mm.Average /= float64(max(out.Hours, 1))
		}
	}
	return out, nil
}

// WriteMonthToDateCSV writes m as CSV: one row per product, metric and
// day, then a row per product and metric for the month so far (day
// "month").
func WriteMonthToDateCSV(w io.Writer, m MonthToDate) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"month", "product_id", "product", "endpoint", "metric", "unit", "day", "average", "objects"})
	for _, p := range m.Products {
		for _, mm := range p.Metrics {
			for _, d := range mm.Days {
				_ = cw.Write([]string{m.Month, strconv.FormatInt(p.ProductID, 10), collectors.DisplayName(p.Kind), p.Endpoint, mm.Metric, mm.Unit, d.Day,
					strconv.FormatFloat(d.Average, 'f', 3, 64), strconv.FormatInt(d.Objects, 10)})
			}
			_ = cw.Write([]string{m.Month, strconv.FormatInt(p.ProductID, 10), collectors.DisplayName(p.Kind), p.Endpoint, mm.Metric, mm.Unit, "month",
				strconv.FormatFloat(mm.Average, 'f', 3, 64), strconv.FormatInt(mm.Objects, 10)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// Settings is the effective configuration, secrets as "<secret>".
type Settings struct {
	// Config is the configuration as `usagemeter config show` prints it,
	// as a JSON object.
	Config map[string]any `json:"config"`
	// YAML is the same as YAML text.
	YAML string `json:"yaml"`
}

// Settings returns the effective configuration (secrets never shown).
func (s *Service) Settings(ctx context.Context) (Settings, error) {
	b, err := s.app.Config.Show()
	if err != nil {
		return Settings{}, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return Settings{}, err
	}
	return Settings{Config: m, YAML: string(b)}, nil
}
