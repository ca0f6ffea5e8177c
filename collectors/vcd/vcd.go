// Package vcd is the VMware Cloud Director collector (product kind "vcd").
//
// Every collection it reads, over one provider session kept between hours,
// four typed queries in records format, paged to the end: virtualCenter (the
// vCenters attached, with their instance UUIDs), organization and adminOrgVdc
// (names of orgs and VDCs) and adminVM (every VM). For each VM under
// management (not a template, not deleted) it emits, per METERING.md, one
// observation:
//
//	Metric vm.managed, ObjectKey "<VCD site id>/vm/<VCD VM id>", Quantity 1,
//	Unit count, Dims: vm, vapp, org, vdc, vcenter, vcenter_uuid, vm_moref,
//	host, status, vram_mb, vcenter_vm_key, vcd.
//
// vram_mb is collectors.CappedBilledMB(memoryMB, 0) for a powered-on VM and 0
// otherwise: Cloud Director does not report the vSphere memory reservation,
// so a VM with a reservation above half its memory is under-counted here; the
// report takes the vCenter's vm.vram for the same VM where it can join.
// vcenter_vm_key is the vCenter collector's ObjectKey of the VM
// ("<vCenter instanceUuid>/vm/<VM instanceUuid>") when it can be derived:
// Cloud Director gives the VM's MoRef and its vCenter's instance UUID but not
// the VM's instance UUID, so today it is always empty; vcenter_uuid and
// vm_moref are the join key the report can use instead. Nothing is guessed.
//
// Sessions: GET /api/versions picks the API version (Options.APIVersion, or
// the highest offered at least 33.0), POST /cloudapi/1.0.0/sessions/provider
// with Basic user@System logs in, and the access token is sent as a bearer
// token. A 401 on a later call logs in again once and retries that call; a
// 401 on the login itself is ErrLogin and is not retried. Every call has its
// own deadline (Target.Timeout). TLS is verified by the system roots or the
// accepted thumbprint (internal/tlsutil); a *tlsutil.CertError is reachable
// with errors.As.
//
// Pairing: Cloud Director spans many vCenters and says itself which ones, so
// a vcd product needs no paired vCenter; when one is given (Target.Paired),
// the collector logs a warning if Cloud Director does not list it.
package vcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "vcd"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Cloud Director",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when Cloud Director rejects the
// user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrVersion is wrapped by the error returned when the API version wanted is
// not offered; the message lists the versions that are.
var ErrVersion = errors.New("API version not offered")

// Dimension names of the observations.
const (
	DimVM           = "vm"
	DimVApp         = "vapp"
	DimOrg          = "org"
	DimOrgID        = "org_id" // the org's id (UUID, lower case): kept through a rename, customer rules match it
	DimVDC          = "vdc"
	DimVCenter      = "vcenter"
	DimVCenterUUID  = "vcenter_uuid"
	DimVMMoref      = "vm_moref"
	DimHost         = "host"
	DimStatus       = "status"
	DimVRAMMB       = "vram_mb"
	DimVCenterVMKey = "vcenter_vm_key"
	DimVCD          = "vcd"
)

// limits are what one Cloud Director answer may cost: a records page of
// pageSize records (each a flat list of attributes, about 1.5 KiB; 16 KiB
// allowed) and its links, at least 8 MiB and, whatever page_size says, at
// most 64 MiB (VCD's own largest page is 128 records unless reconfigured).
func limits(pageSize int) rest.Limits {
	page := min(64<<20, max(8<<20, int64(pageSize)*16<<10+64<<10))
	return rest.Limits{Response: page, Object: 1 << 20, Budget: page}
}

// Collector collects one Cloud Director. Calls are serialised: they share
// one session.
type Collector struct {
	t    collectors.Target
	opts Options
	rc   *rest.Client
	host string
	log  *slog.Logger
	sess rest.Session // over token

	mu       sync.Mutex
	token    string // "" when logged out
	version  string
	offered  []versionInfo
	session  sessionInfo
	maxVer   string
	lastObjs int
}

// New builds a vcd collector for t. It validates the endpoint and options and
// does not contact Cloud Director.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	// The base URL: /api and /cloudapi hang off it.
	if c.rc, err = rest.NewClient(Kind, &c.t, "/api"); err != nil {
		return nil, err
	}
	c.rc.Limits = limits(c.opts.PageSize)
	c.rc.ErrorMessage = errorMessage
	c.host = c.rc.Host()
	c.log = c.t.Logger // collectors.New adds the kind and host
	c.sess = rest.Session{
		Active:   func() bool { return c.token != "" },
		Login:    c.login,
		Forget:   func() { c.token = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized) },
		Renewing: func() { c.log.Info("Cloud Director session expired, logging in again") },
	}
	return c, nil
}

// errorMessage extracts the message of a VCD Error body, if any.
func errorMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
		Minor   string `json:"minorErrorCode"`
	}
	if rest.DecodeJSON(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return rest.Snippet(body)
}

// login discovers the API version and opens a provider session.
func (c *Collector) login(ctx context.Context) error {
	body, _, err := c.rc.Do(ctx, http.MethodGet, "/api/versions", nil, http.Header{"Accept": {"application/*+xml"}})
	if err != nil {
		return fmt.Errorf("reading API versions: %w", err)
	}
	offered, err := parseVersions(body)
	if err != nil {
		return fmt.Errorf("reading API versions: %w", err)
	}
	v, err := pickVersion(offered, c.opts.APIVersion)
	if err != nil {
		return err
	}
	c.offered = offered
	c.maxVer = offered[0].Version
	for _, o := range offered {
		if versionLess(c.maxVer, o.Version) {
			c.maxVer = o.Version
		}
	}
	body, resp, err := c.rc.Do(ctx, http.MethodPost, "/cloudapi/1.0.0/sessions/provider", nil, http.Header{
		"Accept":        {"application/*;version=" + v},
		"Authorization": {rest.Basic(c.t.Username+"@System", c.t.Password.Reveal())},
	})
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
		return fmt.Errorf("logging in as %s@System: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	case errors.As(err, &he) && he.Status == http.StatusNotAcceptable:
		list := make([]string, len(offered))
		for i, o := range offered {
			list[i] = o.Version
		}
		return fmt.Errorf("logging in: %w: version %s refused (%v); the product offers %s", ErrVersion, v, he, strings.Join(list, ", "))
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	tok := resp.Header.Get("X-VMWARE-VCLOUD-ACCESS-TOKEN")
	if tok == "" {
		return errors.New("logging in: the answer carries no X-VMWARE-VCLOUD-ACCESS-TOKEN header")
	}
	s, err := parseSession(body)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.token, c.version, c.session = tok, v, s
	c.log.Debug("logged in", "api_version", v, "site", s.siteID())
	return nil
}

// get reads an authenticated /api path and decodes the JSON answer into v as
// it arrives. A 401 logs in again once and retries.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		hdr := http.Header{
			"Accept":        {"application/*+json;version=" + c.version},
			"Authorization": {"Bearer " + c.token},
		}
		return struct{}{}, c.rc.DoJSON(ctx, http.MethodGet, path, nil, hdr, v)
	})
	return err
}

// queryAll pages through a records query, calling add for every record.
func queryAll[R any](ctx context.Context, c *Collector, typ string, add func(*R)) error {
	seen := 0
	for page := 1; ; page++ {
		path := "/api/query?type=" + typ + "&format=records&page=" + strconv.Itoa(page) + "&pageSize=" + strconv.Itoa(c.opts.PageSize)
		p := new(recordsPage[R])
		if err := c.get(ctx, path, p); err != nil {
			return c.rc.PageError(typ+" query", page, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(typ+" query", page, err)
		}
		if p.Page != page {
			return c.rc.PageError(typ+" query", page, fmt.Errorf("the answer is page %d", p.Page))
		}
		for i := range p.Record {
			add(&p.Record[i])
		}
		seen += len(p.Record)
		if !p.hasNext() || seen >= p.Total || len(p.Record) == 0 {
			return nil
		}
	}
}

// Collect reads Cloud Director's VMs and returns their observations.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.token == "" {
		if err := c.login(ctx); err != nil {
			return nil, fmt.Errorf("vcd %s: %w", c.host, err)
		}
	}
	vcs := map[string]vcRecord{}
	if err := queryAll(ctx, c, "virtualCenter", func(r *vcRecord) { vcs[lastSegment(r.Href)] = *r }); err != nil {
		return nil, err
	}
	orgs := map[string]string{}
	if err := queryAll(ctx, c, "organization", func(r *nameRecord) { orgs[lastSegment(r.Href)] = r.Name }); err != nil {
		return nil, err
	}
	vdcs := map[string]string{}
	if err := queryAll(ctx, c, "adminOrgVdc", func(r *nameRecord) { vdcs[lastSegment(r.Href)] = r.Name }); err != nil {
		return nil, err
	}
	if p := c.t.Paired; p != nil && p.InstanceID != "" {
		found := false
		for _, v := range vcs {
			found = found || strings.EqualFold(v.UUID, p.InstanceID)
		}
		if !found {
			c.log.Warn("the paired vCenter is not attached to this Cloud Director", "vcenter_uuid", p.InstanceID)
		}
	}
	site := c.session.siteID()
	if site == "" {
		site = c.host
	}
	b := builder{site: site, vcd: c.host, vcs: vcs, orgs: orgs, vdcs: vdcs}
	obs := make([]collectors.Observation, 0, c.lastObjs)
	var skipped int
	err := queryAll(ctx, c, "adminVM", func(r *vmRecord) {
		if o, ok := b.observe(r); ok {
			obs = append(obs, o)
		} else {
			skipped++
		}
	})
	if err != nil {
		return nil, err
	}
	c.lastObjs = len(obs)
	c.log.Debug("collected", "managed_vms", len(obs), "skipped", skipped)
	return obs, nil
}

// builder turns VM records into observations. It is pure: the metering rules
// of METERING.md for Cloud Director live here.
type builder struct {
	site, vcd  string
	vcs        map[string]vcRecord // by vimServer id
	orgs, vdcs map[string]string   // names by id
}

// observe returns the observation of a VM record, false for templates and
// deleted VMs (not under management).
func (b *builder) observe(r *vmRecord) (collectors.Observation, bool) {
	if r.IsVAppTemplate || r.IsDeleted {
		return collectors.Observation{}, false
	}
	vc := b.vcs[lastSegment(r.Vc)]
	vram := 0.0
	if r.Status == "POWERED_ON" {
		vram = collectors.CappedBilledMB(float64(r.MemoryMB), 0)
	}
	id := lastSegment(r.Href)
	id = strings.TrimPrefix(id, "vm-")
	return collectors.Observation{
		Metric:    collectors.MetricVMManaged,
		ObjectKey: b.site + "/vm/" + id,
		Quantity:  1,
		Unit:      collectors.UnitCount,
		Dims: map[string]string{
			DimVM:           r.Name,
			DimVApp:         r.ContainerName,
			DimOrg:          b.orgs[lastSegment(r.Org)],
			DimOrgID:        strings.ToLower(lastSegment(r.Org)),
			DimVDC:          b.vdcs[lastSegment(r.Vdc)],
			DimVCenter:      vc.Name,
			DimVCenterUUID:  vc.UUID,
			DimVMMoref:      r.Moref,
			DimHost:         r.HostName,
			DimStatus:       r.Status,
			DimVRAMMB:       strconv.FormatFloat(vram, 'f', -1, 64),
			DimVCenterVMKey: "", // not derivable: VCD gives no VM instance UUID (see package comment)
			DimVCD:          b.vcd,
		},
	}, true
}

// Identify returns Cloud Director's site id (its instance identity), the
// highest API version it offers and its site name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" {
		if err := c.login(ctx); err != nil {
			return collectors.Identity{}, fmt.Errorf("vcd %s: %w", c.host, err)
		}
	}
	id := c.session.siteID()
	if id == "" {
		return collectors.Identity{}, fmt.Errorf("vcd %s: the session names no site: cannot identify this Cloud Director", c.host)
	}
	name := c.host
	if c.session.Site != nil && c.session.Site.Name != "" {
		name = c.session.Site.Name
	}
	return collectors.Identity{InstanceID: id, Version: "API " + c.maxVer, Name: name}, nil
}

// Close ends the session. The collector logs in again on its next Collect.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" {
		return nil
	}
	hdr := http.Header{
		"Accept":        {"application/*;version=" + c.version},
		"Authorization": {"Bearer " + c.token},
	}
	c.token = ""
	_, _, err := c.rc.Do(ctx, http.MethodDelete, "/cloudapi/1.0.0/sessions/current", nil, hdr)
	var he *rest.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("vcd %s: logging out: %w", c.host, err)
	}
	return nil
}
