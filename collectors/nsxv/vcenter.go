package nsxv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors/internal/vsphere"
)

// vcVM is what the paired vCenter says about one VM: NSX-V names VMs and
// logical switches by vCenter MoRef, the report joins on instance UUIDs.
type vcVM struct {
	moref    string
	name     string
	uuid     string // config.instanceUuid
	template bool
	power    string
	networks []string // network MoRefs (dvportgroup-N, network-N)
	host     string   // runtime.host MoRef
	cluster  string   // the host's cluster MoRef, "" for a standalone host
}

// vcenter is a read-only session to the paired vCenter, kept between hours.
type vcenter struct {
	c      *Collector
	u      *url.URL
	host   string
	dialer net.Dialer
	vc     *vim25.Client                // nil when logged out
	view   types.ManagedObjectReference // VirtualMachine container view
	hosts  types.ManagedObjectReference // HostSystem container view
}

func newVCenter(c *Collector) (*vcenter, error) {
	p := c.t.Paired
	if strings.TrimSpace(p.Endpoint) == "" {
		return nil, fmt.Errorf("nsxv %s: the paired vCenter has no endpoint", c.host)
	}
	u, err := vsphere.SDKURL(p.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("nsxv %s: paired vCenter %w", c.host, err)
	}
	return &vcenter{c: c, u: u, host: u.Hostname()}, nil
}

func (v *vcenter) login(ctx context.Context) error {
	p := v.c.t.Paired
	vc, err := vsphere.Connect(ctx, v.u, p.Thumbprint, &v.dialer, v.c.call)
	if err != nil {
		return fmt.Errorf("connecting to the paired vCenter %s: %w", v.host, err)
	}
	if err := vsphere.Login(ctx, vc, p.Username, p.Password.Reveal(), v.c.call); err != nil {
		vc.CloseIdleConnections()
		if errors.Is(err, ErrLogin) {
			return fmt.Errorf("logging in to the paired vCenter %s as %s: %w", v.host, p.Username, err)
		}
		return fmt.Errorf("logging in to the paired vCenter %s: %w", v.host, err)
	}
	if vc.ServiceContent.About.InstanceUuid != "" && !strings.EqualFold(vc.ServiceContent.About.InstanceUuid, p.InstanceID) {
		return fmt.Errorf("the paired vCenter %s is now instance %s, not %s as recorded: re-pair the NSX-V product", v.host, vc.ServiceContent.About.InstanceUuid, p.InstanceID)
	}
	var refs [2]types.ManagedObjectReference
	for i, kind := range []string{"VirtualMachine", "HostSystem"} {
		err = v.c.call(ctx, func(ctx context.Context) error {
			cv, err := view.NewManager(vc).CreateContainerView(ctx, vc.ServiceContent.RootFolder, []string{kind}, true)
			if err == nil {
				refs[i] = cv.Reference()
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("creating the %s view on the paired vCenter %s: %w", kind, v.host, err)
		}
	}
	v.vc, v.view, v.hosts = vc, refs[0], refs[1]
	return nil
}

// vms reads every host's parent, then every VM's MoRef, name, instance UUID,
// template flag, power state, host and networks, each in one paged
// property-collector retrieve. A session
// that expired is renewed once.
func (v *vcenter) vms(ctx context.Context) ([]vcVM, error) {
	for attempt := 0; ; attempt++ {
		if v.vc == nil {
			if err := v.login(ctx); err != nil {
				return nil, err
			}
			attempt = 1
		}
		out, err := v.retrieve(ctx)
		if err != nil && isNotAuthenticated(err) {
			v.vc = nil
			if attempt == 0 {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reading VMs from the paired vCenter %s: %w", v.host, err)
		}
		return out, nil
	}
}

func (v *vcenter) retrieve(ctx context.Context) ([]vcVM, error) {
	var hosts []mo.HostSystem
	err := v.c.call(ctx, func(ctx context.Context) error {
		return view.NewContainerView(v.vc, v.hosts).Retrieve(ctx, []string{"HostSystem"}, []string{"parent"}, &hosts)
	})
	if err != nil {
		return nil, err
	}
	clusterOf := make(map[string]string, len(hosts))
	for _, h := range hosts {
		if h.Parent != nil && h.Parent.Type == "ClusterComputeResource" {
			clusterOf[h.Self.Value] = h.Parent.Value
		}
	}
	var vms []mo.VirtualMachine
	err = v.c.call(ctx, func(ctx context.Context) error {
		return view.NewContainerView(v.vc, v.view).Retrieve(ctx, []string{"VirtualMachine"},
			[]string{"name", "config.instanceUuid", "config.template", "runtime.powerState", "runtime.host", "network"}, &vms)
	})
	if err != nil {
		return nil, err
	}
	out := make([]vcVM, 0, len(vms))
	for i := range vms {
		m := &vms[i]
		r := vcVM{moref: m.Self.Value, name: m.Name, power: string(m.Runtime.PowerState)}
		if m.Runtime.Host != nil {
			r.host = m.Runtime.Host.Value
			r.cluster = clusterOf[r.host]
		}
		if m.Config != nil {
			r.uuid, r.template = m.Config.InstanceUuid, m.Config.Template
		}
		for _, n := range m.Network {
			r.networks = append(r.networks, n.Value)
		}
		out = append(out, r)
	}
	return out, nil
}

func (v *vcenter) logout(ctx context.Context) {
	if v.vc == nil {
		return
	}
	vc := v.vc
	v.vc = nil
	_ = vsphere.Logout(ctx, vc, v.c.call)
}

// isNotAuthenticated reports whether err says the session is gone: vCenter
// answers NotAuthenticated, or (vcsim, and vCenter after a restart) the
// session's container view no longer exists.
func isNotAuthenticated(err error) bool {
	return vsphere.IsNotAuthenticated(err) || fault.Is(err, &types.ManagedObjectNotFound{})
}
