package service

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/migrations"
	"github.com/usagemeter/usagemeter/report"
)

// Health is the daemon's health as /healthz reports it.
type Health struct {
	Status   string            `json:"status"`   // ok, degraded, unavailable
	Database string            `json:"database"` // up, down
	Degraded map[string]string `json:"degraded,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// ApplianceInfo is the appliance's version, registration, health and
// readiness for the month's report.
type ApplianceInfo struct {
	Version        string            `json:"version"`
	Schema         int32             `json:"schema"`
	ExpectedSchema int32             `json:"expected_schema"`
	ApplianceID    string            `json:"appliance_id"`
	CreatedAt      time.Time         `json:"created_at"`
	ContractID     string            `json:"contract_id"`
	Program        string            `json:"program"`
	RegisteredAt   *time.Time        `json:"registered_at"`
	Health         Health            `json:"health"`
	Ready          bool              `json:"ready"`
	Checks         []appliance.Check `json:"checks"`
	// NextReport is when the next monthly report runs (report.schedule),
	// and NextReportMonth the month it reports.
	NextReport      *time.Time `json:"next_report"`
	NextReportMonth string     `json:"next_report_month"`
	Now             time.Time  `json:"now"`
}

// Programs are the licence programmes an appliance can be registered for.
func Programs() []string { return []string{"rental", "sovereign-cloud"} }

// Register records the provider's contract and programme, as
// `usagemeter register` does (audited, refused or not).
func (s *Service) Register(ctx context.Context, a Actor, contract, program string) (err error) {
	contract = strings.TrimSpace(contract)
	defer func() { s.audit(ctx, a, "appliance.register", "contract "+contract, "programme "+program, err) }()
	switch {
	case contract == "":
		return Invalid("contract: the contract id with the aggregator is required")
	case !slices.Contains(Programs(), program):
		return Invalid("programme: choose rental or sovereign-cloud (got %q)", program)
	}
	return s.app.Store.Register(ctx, contract, program, s.now())
}

// Appliance reports version, registration, health and readiness.
func (s *Service) Appliance(ctx context.Context) (ApplianceInfo, error) {
	now := s.now()
	info := ApplianceInfo{Version: s.Version(), ExpectedSchema: migrations.Latest(), Now: now.UTC()}
	a, err := s.app.Store.ReadAppliance(ctx)
	if err != nil {
		return info, err
	}
	info.ApplianceID, info.CreatedAt, info.ContractID, info.Program, info.RegisteredAt = a.ID, a.Created, a.ContractID, a.Program, a.RegisteredAt
	if info.Schema, err = s.app.Store.SchemaVersion(ctx); err != nil {
		return info, err
	}
	if s.health != nil {
		info.Health = s.health(ctx)
	} else if err := s.app.Store.Ping(ctx); err != nil {
		info.Health = Health{Status: "unavailable", Database: "down", Error: "database unreachable"}
	} else {
		info.Health = Health{Status: "ok", Database: "up"}
	}
	info.Checks = appliance.Readiness(ctx, s.app, now)
	info.Ready = true
	for _, c := range info.Checks {
		info.Ready = info.Ready && c.Level != appliance.Failing
	}
	if sched, err := cron.ParseStandard(s.app.Config.Report.Schedule); err == nil {
		next := sched.Next(now.UTC())
		info.NextReport = &next
		loc, err := time.LoadLocation(s.app.Config.Report.Timezone)
		if err != nil {
			loc = time.UTC
		}
		info.NextReportMonth = report.PreviousMonth(next, loc).String()
	}
	return info, nil
}

// Product is a registered product as an admin sees it: never its password.
type Product struct {
	ID            int64           `json:"id"`
	Kind          string          `json:"kind"`
	DisplayName   string          `json:"display_name"`
	Endpoint      string          `json:"endpoint"`
	Username      string          `json:"username"`
	HasPassword   bool            `json:"has_password"`
	Thumbprint    string          `json:"thumbprint,omitempty"`
	InstanceID    string          `json:"instance_id,omitempty"`
	Version       string          `json:"version,omitempty"`
	PairedID      int64           `json:"paired_id,omitempty"`
	Options       json.RawMessage `json:"options"`
	Active        bool            `json:"active"`
	DeactivatedAt *time.Time      `json:"deactivated_at"`
	CreatedAt     time.Time       `json:"created_at"`
	LastCollected *time.Time      `json:"last_collected_hour"`
	OpenAlerts    int             `json:"open_alerts"`
}

func productOf(p store.Product) Product {
	opts := p.Options
	if len(opts) == 0 {
		opts = json.RawMessage("{}")
	}
	return Product{ID: p.ID, Kind: p.Kind, DisplayName: collectors.DisplayName(p.Kind), Endpoint: p.Endpoint, Username: p.Username,
		HasPassword: p.Password.IsSet(), Thumbprint: p.Thumbprint, InstanceID: p.InstanceID, Version: p.Version, PairedID: p.PairedID,
		Options: opts, Active: p.Active, DeactivatedAt: p.DeactivatedAt, CreatedAt: p.CreatedAt}
}

// Products lists the registered products with their last collected hour
// and open alerts.
func (s *Service) Products(ctx context.Context) ([]Product, error) {
	ps, err := s.app.Store.Products(ctx, false)
	if err != nil {
		return nil, err
	}
	last, err := s.app.Store.LastCollected(ctx)
	if err != nil {
		return nil, err
	}
	alerts, err := s.app.Store.OpenAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Product, 0, len(ps))
	for _, p := range ps {
		pr := productOf(p)
		if h, ok := last[p.ID]; ok {
			pr.LastCollected = &h
		}
		for _, a := range alerts {
			if a.ProductID == p.ID {
				pr.OpenAlerts++
			}
		}
		out = append(out, pr)
	}
	return out, nil
}

// Product returns product id.
func (s *Service) Product(ctx context.Context, id int64) (Product, error) {
	p, err := s.app.Store.Product(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Product{}, notFound("product", id)
	}
	if err != nil {
		return Product{}, err
	}
	pr := productOf(p)
	last, err := s.app.Store.LastCollected(ctx)
	if err != nil {
		return pr, err
	}
	if h, ok := last[id]; ok {
		pr.LastCollected = &h
	}
	return pr, nil
}

// Kind is a product kind an admin can add.
type Kind struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	PairsWith   string `json:"pairs_with,omitempty"`
}

// Kinds lists the product kinds.
func (s *Service) Kinds() []Kind {
	var out []Kind
	for _, n := range collectors.Kinds() {
		k, _ := collectors.Lookup(n)
		out = append(out, Kind{Name: n, DisplayName: collectors.DisplayName(n), PairsWith: k.PairsWith})
	}
	return out
}

// Certificate is the certificate a product presents.
type Certificate struct {
	Endpoint   string    `json:"endpoint"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	Thumbprint string    `json:"thumbprint"`
	DNSNames   []string  `json:"dns_names"`
	// ExpiresInDays is whole days left (negative when expired).
	ExpiresInDays int `json:"expires_in_days"`
	// Trust is how the appliance would trust it: "system" (a root the
	// system trusts), "accepted" (the accepted thumbprint matches),
	// "changed" (another thumbprint was accepted), "untrusted".
	Trust string `json:"trust"`
}

// PreviewCertificate connects to address (a URL or host[:port]) and
// returns the certificate it presents, for the admin to accept its
// thumbprint. kind, if given, must be a known product kind.
func (s *Service) PreviewCertificate(ctx context.Context, kind, address string) (Certificate, error) {
	if kind != "" {
		if _, ok := collectors.Lookup(kind); !ok {
			return Certificate{}, Invalid("kind %q is not a product kind (known: %s)", kind, strings.Join(collectors.Kinds(), ", "))
		}
	}
	if strings.TrimSpace(address) == "" {
		return Certificate{}, Invalid("endpoint: the product's address is required")
	}
	return s.certificate(ctx, address, "")
}

// certificate probes endpoint and says how it would be trusted with the
// accepted thumbprint.
func (s *Service) certificate(ctx context.Context, endpoint, accepted string) (Certificate, error) {
	if _, err := tlsutil.HostPort(endpoint); err != nil {
		return Certificate{}, Invalid("endpoint: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := tlsutil.Probe(pctx, endpoint)
	if err != nil {
		return Certificate{}, &Error{Status: http.StatusBadGateway, Err: err}
	}
	c := Certificate{Endpoint: endpoint, Subject: info.Subject, Issuer: info.Issuer, NotBefore: info.NotBefore, NotAfter: info.NotAfter,
		Thumbprint: info.Thumbprint, DNSNames: info.DNSNames, ExpiresInDays: int(info.NotAfter.Sub(s.now()).Hours() / 24)}
	if c.DNSNames == nil {
		c.DNSNames = []string{}
	}
	switch {
	case accepted != "" && accepted == info.Thumbprint:
		c.Trust = "accepted"
	case accepted != "":
		c.Trust = "changed"
	case systemTrusts(pctx, endpoint):
		c.Trust = "system"
	default:
		c.Trust = "untrusted"
	}
	return c, nil
}

// systemTrusts reports whether endpoint's certificate verifies against
// the system roots.
func systemTrusts(ctx context.Context, endpoint string) bool {
	hostport, err := tlsutil.HostPort(endpoint)
	if err != nil {
		return false
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// ProductInput is a product to add. The password is write-only: it is
// never returned.
type ProductInput struct {
	Kind     string        `json:"kind"`
	Endpoint string        `json:"endpoint"`
	Username string        `json:"username"`
	Password config.Secret `json:"password"`
	// AcceptThumbprint is the SHA-256 thumbprint of a certificate the
	// system does not trust, as PreviewCertificate showed it.
	AcceptThumbprint string          `json:"accept_thumbprint"`
	VCenterID        int64           `json:"vcenter_id"` // the vCenter product it pairs with
	Options          json.RawMessage `json:"options"`
	VCFEdition       string          `json:"vcf_edition"`
	TanzuMetric      string          `json:"tanzu_metric"`
}

// Identity is what a product said it is.
type Identity struct {
	InstanceID string `json:"instance_id"` // e.g. vCenter about.instanceUuid
	Version    string `json:"version"`
	Build      string `json:"build"`
	Name       string `json:"name"`
}

func identityOf(i collectors.Identity) Identity { return Identity(i) }

// AddResult is a product added, with what the product said it is.
type AddResult struct {
	Product  Product  `json:"product"`
	Identity Identity `json:"identity"`
}

// certRejection is the error of a product whose certificate is not
// trusted: 409 with the certificate, for the admin to accept.
func (s *Service) certRejection(ctx context.Context, endpoint, accepted string, err error) error {
	var ce *tlsutil.CertError
	if !errors.As(err, &ce) {
		return rejected(err)
	}
	e := &Error{Status: http.StatusConflict, Err: err}
	if c, cerr := s.certificate(ctx, endpoint, accepted); cerr == nil {
		e.Certificate = &c
	}
	if errors.Is(ce.Err, tlsutil.ErrChanged) {
		e.Msg = fmt.Sprintf("the certificate of %s changed: it is now %s, the accepted one is %s; check it and accept the new thumbprint", endpoint, ce.Seen, ce.Accepted)
	} else {
		e.Msg = fmt.Sprintf("the certificate of %s is not trusted by the system: check its thumbprint %s and accept it", endpoint, ce.Seen)
	}
	return e
}

// AddProduct registers a product as `product add` does: options checked,
// the instance identified over TLS (system roots or the accepted
// thumbprint), stored with its credentials sealed.
func (s *Service) AddProduct(ctx context.Context, a Actor, in ProductInput) (res AddResult, err error) {
	defer func() { s.audit(ctx, a, "product.add", productTarget(res.Product.ID, in.Kind, in.Endpoint), "", err) }()
	if in.Kind == "" || in.Endpoint == "" {
		return res, Invalid("kind and endpoint are required")
	}
	if _, ok := collectors.Lookup(in.Kind); !ok {
		return res, Invalid("kind %q is not a product kind (known: %s)", in.Kind, strings.Join(collectors.Kinds(), ", "))
	}
	if in.Username != "" && !in.Password.IsSet() {
		return res, Invalid("password: the account %s needs its password", in.Username)
	}
	opts, err := mergeOptions(nil, in.Options, map[string]string{store.SettingVCFEdition: in.VCFEdition, store.SettingTanzuMetric: in.TanzuMetric})
	if err != nil {
		return res, err
	}
	p := store.Product{Kind: in.Kind, Endpoint: in.Endpoint, Username: in.Username, Password: in.Password,
		Thumbprint: tlsutil.Normalize(in.AcceptThumbprint), Options: opts, PairedID: in.VCenterID}
	id, ident, err := appliance.AddProduct(ctx, s.app, p)
	if err != nil {
		return res, s.certRejection(ctx, in.Endpoint, p.Thumbprint, err)
	}
	res.Identity = identityOf(ident)
	res.Product, err = s.Product(ctx, id)
	return res, err
}

func productTarget(id int64, kind, endpoint string) string {
	t := kind + " " + endpoint
	if id != 0 {
		t = "product " + strconv.FormatInt(id, 10) + " (" + t + ")"
	}
	return strings.TrimSpace(t)
}

// mergeOptions merges options (a JSON object; a key set to null is
// removed) and the named settings (empty: unchanged) into current.
func mergeOptions(current, options json.RawMessage, settings map[string]string) (json.RawMessage, error) {
	opts := map[string]any{}
	if len(current) > 0 {
		if err := json.Unmarshal(current, &opts); err != nil {
			return nil, fmt.Errorf("the product's stored options: %w", err)
		}
	}
	if len(options) > 0 && string(options) != "null" {
		var changes map[string]any
		if err := json.Unmarshal(options, &changes); err != nil {
			return nil, Invalid("options: not a JSON object: %v", err)
		}
		for k, v := range changes {
			if v == nil {
				delete(opts, k)
			} else {
				opts[k] = v
			}
		}
	}
	for k, v := range settings {
		if v != "" {
			opts[k] = v
		}
	}
	return json.Marshal(opts)
}

// ProductUpdate changes a product in place; nil fields are unchanged. The
// VCF edition and Tanzu metric are recorded with the hour they apply from
// (From, default the current hour), as `product set` does.
type ProductUpdate struct {
	Endpoint         *string         `json:"endpoint,omitempty"`
	Username         *string         `json:"username,omitempty"`
	Password         *config.Secret  `json:"password,omitempty"`
	AcceptThumbprint *string         `json:"accept_thumbprint,omitempty"`
	Options          json.RawMessage `json:"options,omitempty"`     // merged; a key set to null is removed
	VCFEdition       *string         `json:"vcf_edition,omitempty"` // "none" unflags
	TanzuMetric      *string         `json:"tanzu_metric,omitempty"`
	From             *time.Time      `json:"from,omitempty"`
}

// UpdateProduct changes product id (`product set`): the changed product is
// checked as an added one is, and must still be the same instance.
func (s *Service) UpdateProduct(ctx context.Context, a Actor, id int64, u ProductUpdate) (p Product, err error) {
	var changed []string
	defer func() {
		s.audit(ctx, a, "product.update", "product "+strconv.FormatInt(id, 10), "changed "+strings.Join(changed, ", "), err)
	}()
	cur, err := s.app.Store.Product(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("product", id)
	}
	if err != nil {
		return p, err
	}
	var su store.ProductUpdate
	if u.Endpoint != nil {
		if *u.Endpoint == "" {
			return p, Invalid("endpoint: must not be empty")
		}
		su.Endpoint, changed = u.Endpoint, append(changed, "endpoint")
	}
	if u.Username != nil {
		if u.Password == nil {
			return p, Invalid("password: a new username needs its password")
		}
		su.Username, changed = u.Username, append(changed, "username")
	}
	if u.Password != nil {
		su.Password, changed = u.Password, append(changed, "password")
	}
	if u.AcceptThumbprint != nil {
		tp := tlsutil.Normalize(*u.AcceptThumbprint)
		su.Thumbprint, changed = &tp, append(changed, "certificate")
	}
	if len(u.Options) > 0 && string(u.Options) != "null" {
		var o map[string]any
		if err := json.Unmarshal(u.Options, &o); err != nil {
			return p, Invalid("options: not a JSON object: %v", err)
		}
		for _, k := range []string{store.SettingVCFEdition, store.SettingTanzuMetric} {
			if _, ok := o[k]; ok {
				return p, Invalid("options: set %s with its own field, which records the hour it applies from", k)
			}
		}
		if su.Options, err = mergeOptions(cur.Options, u.Options, nil); err != nil {
			return p, err
		}
		changed = append(changed, "options")
	}
	billing := map[string]string{}
	if u.VCFEdition != nil {
		v := *u.VCFEdition
		if v == "none" {
			v = ""
		}
		billing[store.SettingVCFEdition] = v
	}
	if u.TanzuMetric != nil {
		billing[store.SettingTanzuMetric] = *u.TanzuMetric
	}
	if len(changed) == 0 && len(billing) == 0 {
		return p, Invalid("nothing to change: give endpoint, username with password, password, accept_thumbprint, options, vcf_edition or tanzu_metric")
	}
	now := s.now()
	from := now.UTC().Truncate(time.Hour)
	if u.From != nil {
		if from, err = ChangeFrom(*u.From, now); err != nil {
			return p, err
		}
	}
	if len(changed) > 0 {
		endpoint := cur.Endpoint
		if u.Endpoint != nil {
			endpoint = *u.Endpoint
		}
		accepted := cur.Thumbprint
		if su.Thumbprint != nil {
			accepted = *su.Thumbprint
		}
		if _, err := appliance.SetProduct(ctx, s.app, id, su); err != nil {
			return p, s.certRejection(ctx, endpoint, accepted, err)
		}
	}
	if len(billing) > 0 {
		if err := appliance.SetBillingOptions(ctx, s.app, id, billing, from, now); err != nil {
			return p, rejected(err)
		}
		for k := range billing {
			changed = append(changed, k)
		}
		slices.Sort(changed)
	}
	return s.Product(ctx, id)
}

// ChangeFrom is the hour an admin change applies from: t truncated to its
// hour, not in the future.
func ChangeFrom(t, now time.Time) (time.Time, error) {
	cur := now.UTC().Truncate(time.Hour)
	if t = t.UTC().Truncate(time.Hour); t.After(cur) {
		return time.Time{}, Invalid("from %s is in the future: a change applies from the current hour (%s) or an earlier one", t.Format(time.RFC3339), cur.Format(time.RFC3339))
	}
	return t, nil
}

// TestResult is what connecting to a product showed.
type TestResult struct {
	Certificate *Certificate `json:"certificate,omitempty"`
	OK          bool         `json:"ok"`
	Identity    *Identity    `json:"identity,omitempty"`
	Error       string       `json:"error,omitempty"`
}

// TestProduct connects to product id as its collector would: the
// certificate, then the login and the instance. A failure is in the
// result (OK false, Error), not an error; errors are for a product that
// does not exist.
func (s *Service) TestProduct(ctx context.Context, a Actor, id int64) (TestResult, error) {
	var res TestResult
	p, err := s.app.Store.Product(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return res, notFound("product", id)
	}
	if err != nil {
		return res, err
	}
	if c, err := s.certificate(ctx, p.Endpoint, p.Thumbprint); err != nil {
		res.Error = err.Error()
		return res, nil
	} else {
		res.Certificate = &c
	}
	ident, err := appliance.TestProduct(ctx, s.app, p)
	if err != nil {
		res.Error = err.Error()
		var ce *tlsutil.CertError
		if errors.As(err, &ce) {
			res.Error = s.certRejection(ctx, p.Endpoint, p.Thumbprint, err).Error()
		}
		return res, nil
	}
	res.OK = true
	if ident.InstanceID != "" || ident.Name != "" {
		id := identityOf(ident)
		res.Identity = &id
	}
	return res, nil
}

// SetActive deactivates (active false) or reactivates product id.
func (s *Service) SetActive(ctx context.Context, a Actor, id int64, active bool) (p Product, err error) {
	action := map[bool]string{true: "product.reactivate", false: "product.deactivate"}[active]
	defer func() { s.audit(ctx, a, action, "product "+strconv.FormatInt(id, 10), "", err) }()
	cur, err := s.app.Store.Product(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("product", id)
	}
	if err != nil {
		return p, err
	}
	if cur.Active != active {
		if err := s.app.Store.SetProductActive(ctx, id, active, s.now()); err != nil {
			return p, err
		}
	}
	return s.Product(ctx, id)
}

// RemoveResult says whether a removed product's rows were deleted (it
// had no history) or kept for reports.
type RemoveResult struct {
	ID      int64 `json:"id"`
	Deleted bool  `json:"deleted"`
}

// RemoveProduct removes product id (its billed history is kept).
func (s *Service) RemoveProduct(ctx context.Context, a Actor, id int64) (res RemoveResult, err error) {
	defer func() { s.audit(ctx, a, "product.remove", "product "+strconv.FormatInt(id, 10), "", err) }()
	if _, err := s.app.Store.Product(ctx, id); errors.Is(err, store.ErrNotFound) {
		return res, notFound("product", id)
	} else if err != nil {
		return res, err
	}
	deleted, err := s.app.Store.RemoveProduct(ctx, id, s.now())
	return RemoveResult{ID: id, Deleted: deleted}, err
}
