package report

// The report bundle: the files of DESIGN.md "Reports", anonymised, in a
// deterministic .tar.gz (entries sorted by name, fixed modification times,
// no owner names, a gzip header without name or time), so that the same
// figures give the same bytes.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Bundle file names.
const (
	FileMonthly  = "Monthly_Usage.tsv"
	FileVMs      = "VM_History.tsv"
	FileClusters = "Cluster_History.tsv"
	FileHourly   = "Hourly_Usage.tsv"
	FileManifest = "manifest.json"
	CustomersDir = "customers/"
	customerFile = "_Monthly_Usage.tsv"
	// ManifestFormat identifies the layout of the bundle.
	ManifestFormat = "usagemeter-report/1"
)

var monthlyHeader = []string{"Product", "Edition", "Metric", "Unit", "Quantity", "Product Host", "Product Version", "Customer"}

// File is one file of the bundle.
type File struct {
	Name string
	Data []byte
}

// Manifest is manifest.json.
type Manifest struct {
	Format        string            `json:"format"`
	ApplianceID   string            `json:"appliance_id"`
	ContractID    string            `json:"contract_id"`
	Program       string            `json:"program"`
	Month         string            `json:"month"`
	TimeZone      string            `json:"time_zone"`
	PeriodStart   string            `json:"period_start"`
	PeriodEnd     string            `json:"period_end"`
	HoursInMonth  int               `json:"hours_in_month"`
	Version       int               `json:"version"`
	RulesVersion  string            `json:"rules_version"`
	Assumptions   []string          `json:"assumptions"`
	Anonymization string            `json:"anonymization"`
	Products      []ProductGaps     `json:"products"`
	Excluded      []ExcludedFigure  `json:"excluded"`
	Included      []IncludedFigure  `json:"included"`
	Changes       []ManifestChange  `json:"changes"`
	Unjoined      []UnjoinedObjects `json:"unjoined"`
	Customers     int               `json:"customers"`
	FiguresSHA256 string            `json:"figures_sha256"`
	Files         []ManifestFile    `json:"files"`
	Extra         map[string]string `json:"extra,omitempty"`
	// Fleet is, for an appliance enrolled with a receiver, the fleet
	// fingerprint of each product instance by its Product Host.
	Fleet []FleetIdentity `json:"fleet,omitempty"`
}

// FleetIdentity ties a Product Host of the report to the fleet fingerprint
// of the product's instance (protocol.Fingerprint of its instance UUID).
type FleetIdentity struct {
	Host        string `json:"host"`
	Fingerprint string `json:"fingerprint"`
}

// ProductGaps are the collection hours of one product instance in the month.
type ProductGaps struct {
	Product        string `json:"product"`
	Kind           string `json:"kind"`
	Host           string `json:"host"`
	ExpectedHours  int    `json:"expected_hours"`
	CollectedHours int    `json:"collected_hours"`
	MissingHours   int    `json:"missing_hours"`
	// BackfilledHours are collected hours recorded later with the state
	// read then (`collect --hour H --backfill`), not in the hour itself.
	BackfilledHours int `json:"backfilled_hours"`
}

// ExcludedFigure is usage metered but not reported (not_reportable, or a
// perpetual or demo licence).
type ExcludedFigure struct {
	Product     string  `json:"product"`
	Host        string  `json:"host"`
	Metric      string  `json:"metric"`
	Edition     string  `json:"edition"`
	Unit        string  `json:"unit"`
	Quantity    float64 `json:"quantity"`
	Objects     int64   `json:"objects"`
	ObjectHours float64 `json:"object_hours"`
}

// IncludedFigure is usage metered but included in another product's
// billing (a VCF vCenter's vRAM and vSAN), so not reported on its own line.
type IncludedFigure struct {
	IncludedIn string `json:"included_in"`
	ExcludedFigure
}

// UnjoinedObjects counts a product's VMs that could not be joined to a
// registered vCenter: their vRAM is the product's own estimate.
type UnjoinedObjects struct {
	Product string `json:"product"`
	Host    string `json:"host"`
	Metric  string `json:"metric"`
	Objects int64  `json:"objects"`
	Reason  string `json:"reason"`
}

// ManifestChange is an admin change that applies from an hour of the month:
// the month is split at that hour.
type ManifestChange struct {
	Setting string `json:"setting"`
	Subject string `json:"subject"` // the product host, or the licence key's hash
	From    string `json:"from"`
	Old     string `json:"old"`
	New     string `json:"new"`
}

// ManifestFile is the checksum of one file of the bundle.
type ManifestFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

// Bundle is a built report before it is versioned and stored. Its large
// files are spooled to disk: Close it when done.
type Bundle struct {
	Month         store.Month
	files         []bundleFile // data files, sorted by name; the manifest is added by WriteTarGz
	Manifest      Manifest
	FiguresSHA256 string
	// Rows of Monthly_Usage.tsv (reported figures only), for summaries.
	Figures int
	rev     *revSpool // the names hashed (hashed mode)
	dir     string    // the spool directory
	lock    *os.File  // held while dir is in use (newSpoolDir)
}

// hostOf is the host part of a product endpoint URL.
func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return endpoint
}

// num formats a quantity with three decimals (never "-0.000").
func num(v float64) string {
	r := math.Round(v*1000) / 1000
	if r == 0 {
		r = 0
	}
	return strconv.FormatFloat(r, 'f', 3, 64)
}

// tsv writes tab-separated rows; tabs and newlines inside fields become
// spaces, and a field a spreadsheet would take for a formula (starting with
// =, +, -, @) is made text with a leading apostrophe (OWASP's advice
// against CSV injection). No figure the report writes is negative.
type tsv struct{ bytes.Buffer }

func (t *tsv) row(fields ...string) {
	for i, f := range fields {
		if i > 0 {
			t.WriteByte('\t')
		}
		if f != "" {
			switch f[0] {
			case '=', '+', '-', '@':
				t.WriteByte('\'')
			}
		}
		// The field is written, then its tabs and line breaks blanked in
		// place (a history file has millions of fields, hardly any with one).
		start := t.Len()
		t.WriteString(f)
		b := t.Bytes()[start:]
		for j, c := range b {
			if c == '\t' || c == '\n' || c == '\r' {
				b[j] = ' '
			}
		}
	}
	t.WriteByte('\n')
}

type monthlyRow struct {
	fields   []string
	customer string // anonymised
}

// build aggregates the month and writes the data files. On error, the
// files spooled so far are removed.
func (g *Generator) build(ctx context.Context, m store.Month, app store.Appliance, now time.Time) (_ *Bundle, err error) {
	an, err := anonymize.New(g.mode, g.secret)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Month: m}
	if b.dir, b.lock, err = newSpoolDir(g.dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.rev.close()
			b.Close()
		}
	}()
	nm := &namer{h: an.Hasher(), cache: map[string]string{}}
	if g.mode == anonymize.ModeHashed {
		if b.rev, err = newRevSpool(b.dir); err != nil {
			return nil, err
		}
		nm.rev = b.rev
	}
	products, err := g.store.ProductInfos(ctx)
	if err != nil {
		return nil, err
	}
	// A product's host and name, once per product (not per history row).
	prodHosts := map[int64]string{}
	prodHost := func(id int64) string {
		h, ok := prodHosts[id]
		if !ok {
			h = nm.name(anonymize.KindProductHost, hostOf(products[id].Endpoint))
			prodHosts[id] = h
		}
		return h
	}
	prodNames := map[int64]string{}
	prodName := func(id int64) string {
		n, ok := prodNames[id]
		if !ok {
			n = productName(products[id].Kind)
			prodNames[id] = n
		}
		return n
	}
	tz := g.loc.String()
	b.Manifest = Manifest{
		Format: ManifestFormat, ApplianceID: app.ID, ContractID: app.ContractID, Program: app.Program,
		Month: m.String(), TimeZone: tz, PeriodStart: m.Start.Format(time.RFC3339), PeriodEnd: m.End.Format(time.RFC3339),
		HoursInMonth: m.Hours(), RulesVersion: RulesVersion, Assumptions: Assumptions, Anonymization: string(g.mode),
		Products: []ProductGaps{}, Excluded: []ExcludedFigure{}, Included: []IncludedFigure{}, Changes: []ManifestChange{}, Unjoined: []UnjoinedObjects{},
	}

	if len(g.fleetKey) > 0 {
		if b.Manifest.Fleet, err = g.fleet(ctx, prodHost); err != nil {
			return nil, err
		}
	}

	// The month's spans, selected and labelled once.
	stage := time.Now()
	lap := func(what string) {
		g.log.Debug("report stage", "month", m.String(), "stage", what, "took", time.Since(stage).Round(time.Millisecond).String())
		stage = time.Now()
	}
	md, err := g.store.OpenMonth(ctx, m, allMetrics)
	if err != nil {
		return nil, err
	}
	defer md.Close(ctx)
	lap("select")

	// Editions as the product names them (the raw keys stay in the
	// history files).
	editionNames, err := md.EditionNames(ctx)
	if err != nil {
		return nil, err
	}
	edition := func(product, key string) string {
		if n, ok := editionNames[key]; ok {
			return n
		}
		if n, ok := vcfEditions[key]; ok && product == vcfProduct {
			return n
		}
		return key
	}

	// Monthly figures: one query per aggregation kind.
	type query func(context.Context, []string) ([]store.Figure, error)
	kinds := []struct {
		kind string
		q    query
	}{{Average, md.AverageFigures}, {AverageVRAM, md.VCDVRAMFigures}, {JoinedVRAM, md.JoinedVRAMFigures}, {JoinedCount, md.JoinedCountFigures}, {Count, md.CountFigures}, {Maximum, md.MaximumFigures}, {Unique, md.UniqueFigures}}
	var rows []monthlyRow
	for _, k := range kinds {
		figs, err := k.q(ctx, metricsOf(k.kind))
		if err != nil {
			return nil, err
		}
		lap(k.kind)
		for _, f := range figs {
			p := products[f.ProductID]
			r := ruleFor(k.kind, f.Metric, p.Kind, f.Edition)
			if r == nil {
				continue
			}
			prod := r.Product
			if prod == "" {
				prod = productName(p.Kind)
			}
			line := ExcludedFigure{
				Product: prod, Host: prodHost(f.ProductID), Metric: r.Name, Edition: edition(prod, f.Edition), Unit: f.Unit,
				Quantity: math.Round(f.Value*1000) / 1000, Objects: f.Objects, ObjectHours: f.Hours,
			}
			if r.IncludedIn != "" && f.Reportable {
				b.Manifest.Included = append(b.Manifest.Included, IncludedFigure{IncludedIn: r.IncludedIn, ExcludedFigure: line})
				continue
			}
			if !f.Reportable {
				b.Manifest.Excluded = append(b.Manifest.Excluded, line)
				continue
			}
			cust := nm.customer(f.Customer)
			rows = append(rows, monthlyRow{customer: cust, fields: []string{
				prod, edition(prod, f.Edition), r.Name, f.Unit, num(f.Value), prodHost(f.ProductID), p.Version, cust,
			}})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return lessFields(rows[i].fields, rows[j].fields) })
	sort.Slice(b.Manifest.Excluded, func(i, j int) bool {
		a, c := b.Manifest.Excluded[i], b.Manifest.Excluded[j]
		return lessFields([]string{a.Product, a.Host, a.Metric, a.Edition}, []string{c.Product, c.Host, c.Metric, c.Edition})
	})
	sort.Slice(b.Manifest.Included, func(i, j int) bool {
		a, c := b.Manifest.Included[i], b.Manifest.Included[j]
		return lessFields([]string{a.Product, a.Host, a.Metric, a.Edition}, []string{c.Product, c.Host, c.Metric, c.Edition})
	})
	b.Figures = len(rows)
	unjoined, err := md.UnjoinedVCD(ctx, metricsOf(AverageVRAM))
	if err != nil {
		return nil, err
	}
	unjoinedNSX, err := md.UnjoinedNSX(ctx, metricsOf(JoinedVRAM))
	if err != nil {
		return nil, err
	}
	for _, u := range append(unjoined, unjoinedNSX...) {
		reason := "vCenter not registered: vRAM estimated from the configured memory (no reservation)"
		if u.Metric != collectors.MetricVMManaged {
			reason = "no registered vCenter billed the VM in the month: no vRAM"
		}
		b.Manifest.Unjoined = append(b.Manifest.Unjoined, UnjoinedObjects{Product: productName(products[u.ProductID].Kind), Host: prodHost(u.ProductID),
			Metric: u.Metric, Objects: u.Objects, Reason: reason})
	}
	changes, err := g.store.AdminChanges(ctx, m.Start, m.End)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		subject := c.Subject
		if c.Setting == store.SettingLicenseCategory {
			subject = nm.name("license", c.Subject)
		} else if id, err := strconv.ParseInt(c.Subject, 10, 64); err == nil {
			subject = prodHost(id)
		}
		b.Manifest.Changes = append(b.Manifest.Changes, ManifestChange{Setting: c.Setting, Subject: subject,
			From: c.From.In(g.loc).Format(time.RFC3339), Old: c.Old, New: c.New})
	}
	var monthly tsv
	monthly.row(monthlyHeader...)
	perCustomer := map[string]*tsv{}
	for _, r := range rows {
		monthly.row(r.fields...)
		c := perCustomer[r.customer]
		if c == nil {
			c = &tsv{}
			c.row(monthlyHeader...)
			perCustomer[r.customer] = c
		}
		c.row(r.fields...)
	}
	b.files = append(b.files, memFile(FileMonthly, monthly.Bytes()))
	custs := make([]string, 0, len(perCustomer))
	for cust := range perCustomer {
		custs = append(custs, cust)
	}
	sort.Strings(custs)
	used := map[string]bool{}
	for _, cust := range custs {
		// Labels that differ only in characters a file name cannot hold
		// ("A/B", "A_B") get numbered names.
		name := fileSafe(cust)
		for i := 2; used[name]; i++ {
			name = fileSafe(cust) + "-" + strconv.Itoa(i)
		}
		used[name] = true
		b.files = append(b.files, memFile(CustomersDir+name+customerFile, perCustomer[cust].Bytes()))
	}
	b.Manifest.Customers = len(perCustomer)

	// Gaps per product.
	gaps, err := g.store.MonthGaps(ctx, m, now)
	if err != nil {
		return nil, err
	}
	backfilled, err := g.store.MonthBackfilled(ctx, m)
	if err != nil {
		return nil, err
	}
	lap("gaps")
	for _, gp := range gaps {
		p := products[gp.ProductID]
		b.Manifest.Products = append(b.Manifest.Products, ProductGaps{
			Product: productName(p.Kind), Kind: p.Kind, Host: prodHost(gp.ProductID),
			ExpectedHours: gp.Expected, CollectedHours: gp.Collected, MissingHours: gp.Missing, BackfilledHours: backfilled[gp.ProductID],
		})
	}
	sort.SliceStable(b.Manifest.Products, func(i, j int) bool {
		a, c := b.Manifest.Products[i], b.Manifest.Products[j]
		return lessFields([]string{a.Product, a.Host}, []string{c.Product, c.Host})
	})

	hours := &hourNames{loc: g.loc, cache: map[int64]string{}}
	yesNo := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	// Usage included in VCF is listed under its metered metric, reported
	// "included".
	reported := func(h *store.HistoryRow) (metric, rep string) {
		if base, ok := includedMetrics[h.Metric]; ok {
			if h.Reportable {
				return base, "included"
			}
			return base, "no"
		}
		return h.Metric, yesNo(h.Reportable)
	}

	// The vCenter, datacenter, cluster and host names of a history row,
	// anonymised once per state (rows of one state have the same names),
	// in the order the names are hashed in (the reverse map's order).
	places := map[int32][4]string{}
	place := func(h *store.HistoryRow) [4]string {
		p, ok := places[h.State]
		if !ok {
			p = [4]string{nm.name(anonymize.KindVCenter, h.VCenter), nm.name(anonymize.KindDatacenter, h.Datacenter),
				nm.name(anonymize.KindCluster, h.Cluster), nm.name(anonymize.KindHost, h.Host)}
			places[h.State] = p
		}
		return p
	}

	// spool writes a file of the bundle to disk, row by row, with rows.
	spool := func(name string, rows func(*spoolTSV) error) error {
		w, err := newSpoolTSV(b.dir, name)
		if err != nil {
			return err
		}
		if err := rows(w); err != nil {
			w.close()
			return err
		}
		f, err := w.close()
		if err != nil {
			return err
		}
		b.files = append(b.files, f)
		lap(name)
		return nil
	}

	// VM history: streamed from the database to the spool.
	err = spool(FileVMs, func(w *spoolTSV) error {
		w.row("Product", "Product Host", "Metric", "VM ID", "VM", "vCenter", "Datacenter", "Cluster", "Host", "Folder", "Resource Pool", "Org",
			"Edition", "Customer", "Reported", "First Hour", "Last Hour", "Hours", "Quantity", "Unit")
		return md.History(ctx, vmMetrics, func(h *store.HistoryRow) error {
			metric, rep := reported(h)
			ph, id, vm := prodHost(h.ProductID), nm.name("vm_id", h.ObjectKey), nm.name(anonymize.KindVM, h.VM)
			pl := place(h)
			w.row(prodName(h.ProductID), ph, metric, id, vm, pl[0], pl[1], pl[2], pl[3], nm.name(anonymize.KindFolder, h.Folder),
				nm.name(anonymize.KindResourcePool, h.ResourcePool), nm.name(anonymize.KindOrg, h.Org),
				h.Edition, nm.customer(h.Customer), rep, hours.name(h.First), hours.name(h.Last),
				hoursText(h.Hours), num(h.Quantity), h.Unit)
			return w.err
		})
	})
	if err != nil {
		return nil, err
	}

	// Cluster and host history.
	err = spool(FileClusters, func(w *spoolTSV) error {
		w.row("Product", "Product Host", "Metric", "Object ID", "vCenter", "Datacenter", "Cluster", "Host",
			"Edition", "Customer", "Reported", "First Hour", "Last Hour", "Hours", "Quantity", "Unit")
		return md.History(ctx, clusterMetrics, func(h *store.HistoryRow) error {
			metric, rep := reported(h)
			ph, id := prodHost(h.ProductID), nm.name("object_id", h.ObjectKey)
			pl := place(h)
			w.row(prodName(h.ProductID), ph, metric, id, pl[0], pl[1], pl[2], pl[3],
				h.Edition, nm.customer(h.Customer), rep, hours.name(h.First), hours.name(h.Last),
				hoursText(h.Hours), num(h.Quantity), h.Unit)
			return w.err
		})
	})
	if err != nil {
		return nil, err
	}

	// Hourly totals.
	err = spool(FileHourly, func(w *spoolTSV) error {
		w.row("Hour", "Product", "Product Host", "Metric", "Edition", "Unit", "Quantity", "Objects", "Collected")
		return md.HourlyTotals(ctx, hourlyMetrics, func(h store.HourlyTotal) error {
			if !collectors.Due(products[h.ProductID].Kind, h.Hour) {
				// A product collected less often than hourly (Horizon DaaS:
				// every 6 hours) is listed at its sampling hours only: the
				// hours between are not collected by design, not missing.
				return nil
			}
			w.row(hours.name(h.Hour), prodName(h.ProductID), prodHost(h.ProductID), h.Metric, h.Edition, h.Unit,
				num(h.Quantity), strconv.FormatInt(h.Objects, 10), yesNo(h.Collected))
			return w.err
		})
	})
	if err != nil {
		return nil, err
	}
	if err := b.rev.close(); err != nil {
		return nil, err
	}

	sort.Slice(b.files, func(i, j int) bool { return b.files[i].name < b.files[j].name })
	b.FiguresSHA256 = figuresHash(b.files)
	b.Manifest.FiguresSHA256 = b.FiguresSHA256
	return b, nil
}

// fleet is the fleet fingerprint of every product with an instance id, by
// its Product Host.
func (g *Generator) fleet(ctx context.Context, prodHost func(int64) string) ([]FleetIdentity, error) {
	prods, err := g.store.Products(ctx, false)
	if err != nil {
		return nil, err
	}
	seen := map[FleetIdentity]bool{}
	out := []FleetIdentity{}
	for _, p := range prods {
		if p.InstanceID == "" {
			continue
		}
		id := FleetIdentity{Host: prodHost(p.ID), Fingerprint: protocol.Fingerprint(g.fleetKey, p.InstanceID)}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return lessFields([]string{out[i].Host, out[i].Fingerprint}, []string{out[j].Host, out[j].Fingerprint})
	})
	return out, nil
}

func lessFields(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// fileSafe makes an (anonymised) customer label usable as a file name.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return strings.TrimLeft(b.String(), ".")
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// figuresHash is the SHA-256 over the names and checksums of the data files:
// the identity of the figures, whatever version or time they are stored at.
func figuresHash(files []bundleFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %s\n", f.sum, f.name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TarGz returns the bundle as version (see WriteTarGz) in memory: for tests
// and small bundles.
func (b *Bundle) TarGz(version int) ([]byte, error) {
	var buf bytes.Buffer
	err := b.WriteTarGz(&buf, version)
	return buf.Bytes(), err
}

// WriteTarGz writes the bundle as version to w: the data files and
// manifest.json, as a deterministic .tar.gz, streamed from the spooled
// files.
func (b *Bundle) WriteTarGz(w io.Writer, version int) error {
	if b.dir == "" {
		return errClosed
	}
	man := b.Manifest
	man.Version = version
	return writeBundle(w, man, b.files, b.Month.Start.UTC())
}

// PackBundle writes files, a bundle's data files (a manifest.json among
// them is left out), under man as a bundle .tar.gz to w, laid out as
// WriteTarGz lays out a built bundle: man's Files and FiguresSHA256 are
// computed from the files, the time stamps are man's PeriodStart. It is for
// re-packing the files of a bundle (as ReadTarGz returns them) under
// another manifest: the fleet benchmark's appliances share a few months.
func PackBundle(w io.Writer, man Manifest, files []File) error {
	start, err := time.Parse(time.RFC3339, man.PeriodStart)
	if err != nil {
		return fmt.Errorf("the manifest's period_start: %w", err)
	}
	data := make([]bundleFile, 0, len(files))
	seen := map[string]bool{}
	for _, f := range files {
		switch {
		case f.Name == FileManifest:
			continue
		case seen[f.Name]:
			return fmt.Errorf("%s given twice", f.Name)
		}
		seen[f.Name] = true
		data = append(data, memFile(f.Name, f.Data))
	}
	sort.Slice(data, func(i, j int) bool { return data[i].name < data[j].name })
	man.FiguresSHA256 = figuresHash(data)
	return writeBundle(w, man, data, start.UTC())
}

// writeBundle writes the data files, sorted by name, and man listing them
// as a .tar.gz.
func writeBundle(w io.Writer, man Manifest, data []bundleFile, mtime time.Time) error {
	man.Files = nil
	for _, f := range data {
		man.Files = append(man.Files, ManifestFile{Name: f.name, SHA256: f.sum, Size: int(f.size)})
	}
	mj, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	mj = append(mj, '\n')
	files := append(append([]bundleFile{}, data...), memFile(FileManifest, mj))
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return writeTarGz(w, files, mtime)
}

// writeTarGz writes the tar of files as gzip members: headers and small
// files compressed here, and each file spooled with its own member
// (bundleFile.gz) copied after its header. The tar is the same as
// archive/tar's for these headers; a gzip reader reads the members as one
// stream.
func writeTarGz(w io.Writer, files []bundleFile, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	header := func(h *tar.Header) error {
		buf.Reset()
		if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
			return err
		}
		_, err := zw.Write(buf.Bytes())
		return err
	}
	dirs := map[string]bool{}
	for _, f := range files {
		if d := path.Dir(f.name); d != "." && !dirs[d] {
			dirs[d] = true
			if err := header(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if err := header(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: f.size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if f.gz != "" {
			if err := zw.Close(); err != nil {
				return err
			}
			if err := copyFile(w, f.gz); err != nil {
				return fmt.Errorf("writing %s into the bundle: %w", f.name, err)
			}
			zw.Reset(w)
			continue
		}
		r, err := f.open()
		if err != nil {
			return err
		}
		n, err := io.Copy(zw, r)
		r.Close()
		if err == nil && n != f.size {
			err = fmt.Errorf("%d bytes, not the %d spooled", n, f.size)
		}
		if err != nil {
			return fmt.Errorf("writing %s into the bundle: %w", f.name, err)
		}
		if _, err := zw.Write(make([]byte, tarPad(f.size))); err != nil {
			return err
		}
	}
	// The end of the archive: two zero blocks.
	if _, err := zw.Write(make([]byte, 2*tarBlock)); err != nil {
		return err
	}
	return zw.Close()
}

func copyFile(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// ReadTarGz returns the regular files of a bundle, in archive order.
func ReadTarGz(r io.Reader) ([]File, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a report bundle (.tar.gz): %w", err)
	}
	tr := tar.NewReader(zr)
	var files []File
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading bundle: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<30))
		if err != nil {
			return nil, fmt.Errorf("reading bundle file %s: %w", h.Name, err)
		}
		files = append(files, File{h.Name, data})
	}
}

// VerifyBundle checks a plain bundle against its manifest: every file listed
// with the right SHA-256 and size, no file unlisted, the figures hash
// consistent. It returns the manifest.
func VerifyBundle(tgz []byte) (*Manifest, error) {
	man, _, err := VerifyBundleStream(bytes.NewReader(tgz), func(string) bool { return false })
	return man, err
}

// VerifyBundleStream checks a plain bundle read from r against its
// manifest, as VerifyBundle, hashing each file as it streams by: only the
// files keep names are held and returned (the receiver keeps
// Monthly_Usage.tsv of a bundle whose VM history is tens of MB).
func VerifyBundleStream(r io.Reader, keep func(name string) bool) (*Manifest, []File, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("not a report bundle (.tar.gz): %w", err)
	}
	tr := tar.NewReader(zr)
	var (
		man       *Manifest
		kept      []File
		dataFiles []bundleFile
	)
	seen := map[string]bundleFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading bundle: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Name == FileManifest {
			man = &Manifest{}
			if err := json.NewDecoder(io.LimitReader(tr, 64<<20)).Decode(man); err != nil {
				return nil, nil, fmt.Errorf("manifest.json: %w", err)
			}
			continue
		}
		hs := sha256.New()
		var buf *bytes.Buffer
		w := io.Writer(hs)
		if keep(h.Name) {
			buf = &bytes.Buffer{}
			w = io.MultiWriter(hs, buf)
		}
		n, err := io.Copy(w, io.LimitReader(tr, 1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("reading bundle file %s: %w", h.Name, err)
		}
		f := bundleFile{name: h.Name, size: n, sum: hex.EncodeToString(hs.Sum(nil))}
		seen[h.Name] = f
		dataFiles = append(dataFiles, f)
		if buf != nil {
			kept = append(kept, File{h.Name, buf.Bytes()})
		}
	}
	if man == nil {
		return nil, nil, fmt.Errorf("bundle has no %s", FileManifest)
	}
	if man.Format != ManifestFormat {
		return man, nil, fmt.Errorf("manifest format %q, want %q", man.Format, ManifestFormat)
	}
	var problems []string
	listed := map[string]bool{}
	for _, mf := range man.Files {
		listed[mf.Name] = true
		f, ok := seen[mf.Name]
		switch {
		case !ok:
			problems = append(problems, mf.Name+": listed in the manifest but missing")
		case f.sum != mf.SHA256 || f.size != int64(mf.Size):
			problems = append(problems, fmt.Sprintf("%s: SHA-256 %s (%d bytes), manifest says %s (%d bytes)", mf.Name, f.sum, f.size, mf.SHA256, mf.Size))
		}
	}
	for name := range seen {
		if !listed[name] {
			problems = append(problems, name+": not listed in the manifest")
		}
	}
	sort.Slice(dataFiles, func(i, j int) bool { return dataFiles[i].name < dataFiles[j].name })
	if len(problems) == 0 && figuresHash(dataFiles) != man.FiguresSHA256 {
		problems = append(problems, "figures_sha256 does not match the files")
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return man, nil, fmt.Errorf("bundle does not match its manifest:\n  %s", strings.Join(problems, "\n  "))
	}
	return man, kept, nil
}
