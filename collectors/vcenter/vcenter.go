// Package vcenter is the vCenter Server collector (product kind "vcenter").
//
// Every collection it reads, over one SOAP session kept between hours, the
// whole inventory in one paged property-collector retrieve (one ContainerView
// per object type, RetrievePropertiesEx/ContinueRetrievePropertiesEx with
// explicit property paths, never a call per VM), the licence assigned to every
// host (one QueryAssignedLicenses call), and for each vSAN cluster its
// configuration and used capacity from the vSAN health service. From these it
// emits, per METERING.md:
//
//   - vm.vram for every powered-on, non-template VM (capped billed vRAM, MB),
//     with the host's licence key and edition;
//   - host.cores for every host running a powered-on VM, when the vCenter is
//     flagged VMware Cloud Foundation (Options.VCFEdition);
//   - vsan.used_gb for every vSAN-enabled cluster, with the edition its
//     features in use require;
//   - tanzu.vram (or tanzu.cores) for the vSphere with Tanzu namespace VMs.
//
// The session is re-established when vCenter answers NotAuthenticated; a
// wrong password is ErrLogin and is tried once per Collect. TLS is verified by
// the system roots or the accepted thumbprint (internal/tlsutil); a
// *tlsutil.CertError is returned wrapped so errors.As finds it.
//
// README.md next to this file lists the privileges the metering user needs.
package vcenter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/pbm"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/vsphere"
)

// Kind is the product kind this package registers.
const Kind = "vcenter"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "vCenter Server",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

var (
	_ collectors.Collector  = (*Collector)(nil)
	_ collectors.Identifier = (*Collector)(nil)
	_ collectors.Closer     = (*Collector)(nil)
)

// ErrLogin is wrapped by the error returned when vCenter rejects the user name
// or password. The login is not retried within the same Collect.
var ErrLogin = collectors.ErrBadCredentials // is collectors.ErrAuth: not retried within the hour

// Collector collects one vCenter. It is safe for concurrent use; calls are
// serialised because they share one session.
type Collector struct {
	t      collectors.Target
	opts   Options
	u      *url.URL // endpoint without user information
	host   string   // host name as given in the endpoint, for dims and messages
	log    *slog.Logger
	dialer net.Dialer

	mu    sync.Mutex
	s     *sessionState // nil when logged out
	pages int           // property-collector pages read by the last collection
}

// sessionState is what one login holds: the client and the objects created
// for it (views are per session and die with it).
type sessionState struct {
	vc    *vim25.Client
	about types.AboutInfo
	views []types.ManagedObjectReference
	lam   *types.ManagedObjectReference // LicenseAssignmentManager, nil on ESXi
	pbm   *pbm.Client                   // storage policy service, opened when a vSAN cluster is seen
}

// New builds a vcenter collector for t. It validates the endpoint and the
// options and does not contact vCenter.
func New(t collectors.Target) (collectors.Collector, error) {
	return newCollector(t)
}

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	u, err := sdkURL(t.Endpoint)
	if err != nil {
		return nil, err
	}
	if t.Username == "" {
		return nil, fmt.Errorf("vcenter %s: a user name is required", u.Hostname())
	}
	t.SetDefaults()
	return &Collector{
		t:    t,
		opts: opts,
		u:    u,
		host: u.Hostname(),
		log:  t.Logger, // collectors.New adds the kind and host
	}, nil
}

// sdkURL is the SOAP endpoint URL of endpoint.
func sdkURL(endpoint string) (*url.URL, error) {
	u, err := vsphere.SDKURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("vcenter %w", err)
	}
	return u, nil
}

// call runs f under its own deadline of Target.Timeout.
func (c *Collector) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.Timeout)
	defer cancel()
	err := f(ctx)
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		// The HTTP client may report the deadline as a bare I/O error: say
		// what happened.
		err = fmt.Errorf("%w (no answer within the %s deadline)", err, c.t.Timeout)
	}
	return err
}

// Collect reads the vCenter's state and returns its observations.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var obs []collectors.Observation
	err := c.withSession(ctx, func() (err error) {
		obs, err = c.collect(ctx)
		return err
	})
	return obs, err
}

// withSession runs f over the kept session, logging in first when there is
// none, and once again when vCenter says the kept session expired. c.mu is
// held.
func (c *Collector) withSession(ctx context.Context, f func() error) error {
	fresh := false
	if c.s == nil {
		if err := c.login(ctx); err != nil {
			return err
		}
		fresh = true
	}
	err := f()
	if err != nil && !fresh && isNotAuthenticated(err) {
		c.log.Info("vCenter session expired, logging in again")
		c.drop() // the old session is gone on the server; nothing to log out
		if err := c.login(ctx); err != nil {
			return err
		}
		err = f()
	}
	if err != nil && isNotAuthenticated(err) {
		c.drop()
	}
	return err
}

// drop forgets the session and closes its connections.
func (c *Collector) drop() {
	if c.s != nil {
		c.s.vc.Client.CloseIdleConnections()
		c.s = nil
	}
}

// Identify returns the vCenter's about.instanceUuid, version, build and name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s == nil {
		if err := c.login(ctx); err != nil {
			return collectors.Identity{}, err
		}
	}
	a := c.s.about
	return collectors.Identity{InstanceID: a.InstanceUuid, Version: a.Version, Build: a.Build, Name: a.Name}, nil
}

// Close logs out. The collector logs in again on its next Collect.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s == nil {
		return nil
	}
	s := c.s
	err := vsphere.Logout(ctx, s.vc, c.call)
	c.drop()
	if err != nil && !isNotAuthenticated(err) {
		return fmt.Errorf("logging out of %s: %w", c.host, err)
	}
	return nil
}

// login opens a session: one attempt, no retry.
func (c *Collector) login(ctx context.Context) error {
	vc, err := vsphere.Connect(ctx, c.u, c.t.Thumbprint, &c.dialer, c.call)
	if err != nil {
		return fmt.Errorf("connecting to vCenter %s: %w", c.host, err)
	}
	sc := vc.Client
	if err := vsphere.Login(ctx, vc, c.t.Username, c.t.Password.Reveal(), c.call); err != nil {
		sc.CloseIdleConnections()
		return fmt.Errorf("logging in to %s as %s: %w", c.host, c.t.Username, err)
	}
	s := &sessionState{vc: vc, about: vc.ServiceContent.About}
	if err := c.prepare(ctx, s); err != nil {
		c.logout(ctx, s)
		sc.CloseIdleConnections()
		return err
	}
	c.s = s
	return nil
}

// logout ends s, best effort (used when a half-prepared session is dropped).
func (c *Collector) logout(ctx context.Context, s *sessionState) {
	_ = vsphere.Logout(ctx, s.vc, c.call)
}

// viewTypes are the object types of the inventory, one ContainerView each
// (a view lists only the exact types it was created with).
var viewTypes = [][]string{
	{"VirtualMachine"},
	{"HostSystem"},
	{"ClusterComputeResource", "ComputeResource"},
	{"ResourcePool", "VirtualApp"},
	{"Folder", "Datacenter"},
}

// prepare creates the session's container views and finds the licence
// assignment manager. Both live as long as the session.
func (c *Collector) prepare(ctx context.Context, s *sessionState) error {
	m := view.NewManager(s.vc)
	for _, kinds := range viewTypes {
		err := c.call(ctx, func(ctx context.Context) error {
			v, err := m.CreateContainerView(ctx, s.vc.ServiceContent.RootFolder, kinds, true)
			if err == nil {
				s.views = append(s.views, v.Reference())
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("creating the %s view on %s: %w", strings.Join(kinds, "/"), c.host, err)
		}
	}
	if lm := s.vc.ServiceContent.LicenseManager; lm != nil {
		var l mo.LicenseManager
		err := c.call(ctx, func(ctx context.Context) error {
			return retrieveOne(ctx, s.vc, *lm, []string{"licenseAssignmentManager"}, &l)
		})
		if err != nil {
			return fmt.Errorf("reading the licence manager of %s: %w", c.host, err)
		}
		s.lam = l.LicenseAssignmentManager
	}
	return nil
}

// retrieveOne reads properties of one object.
func retrieveOne(ctx context.Context, vc *vim25.Client, obj types.ManagedObjectReference, props []string, dst any) error {
	req := types.RetrievePropertiesEx{
		This: vc.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{{Obj: obj}},
			PropSet:   []types.PropertySpec{{Type: obj.Type, PathSet: props}},
		}},
	}
	res, err := methods.RetrievePropertiesEx(ctx, vc, &req)
	if err != nil {
		return err
	}
	if res.Returnval == nil {
		return nil
	}
	return mo.LoadObjectContent(res.Returnval.Objects, dst)
}

// isNotAuthenticated reports whether err is vCenter saying the session is
// not (or no longer) valid.
func isNotAuthenticated(err error) bool { return vsphere.IsNotAuthenticated(err) }
