package vcenter

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
)

// Credentials the test vCenters accept.
const (
	simUser     = vcsim.DefaultUser
	simPassword = vcsim.DefaultPassword
)

// testSim is one simulated vCenter (collectors/vcenter/simulator) shaped by a test,
// with lookups that fail the test instead of returning nil.
type testSim struct {
	*vcsim.Simulator
	t testing.TB
}

// newSim creates the model's inventory and serves it. shape (optional) edits
// the model's counts, simulator.VPX's to begin with, before the inventory is
// created.
func newSim(t testing.TB, shape func(m *simulator.Model)) *testSim {
	t.Helper()
	s, err := vcsim.New(vcsim.Options{Shape: func(m *simulator.Model) {
		// vcsim starts from a provider's counts; these tests from VPX's.
		vpx := simulator.VPX()
		m.Datacenter, m.Cluster, m.ClusterHost = vpx.Datacenter, vpx.Cluster, vpx.ClusterHost
		m.Host, m.Machine = vpx.Host, vpx.Machine
		if shape != nil {
			shape(m)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &testSim{Simulator: s, t: t}
}

// target is a Target reaching the simulator at host (its IP when "").
func (v *testSim) target(host string, opts string) collectors.Target {
	ep := v.Addr()
	if host != "" {
		_, port, _ := net.SplitHostPort(ep)
		ep = host + ":" + port
	}
	return collectors.Target{
		ProductID:  1,
		Kind:       Kind,
		Endpoint:   "https://" + ep + "/sdk",
		Username:   v.User(),
		Password:   collectors.Secret(v.Password()),
		Thumbprint: v.Thumbprint(),
		Options:    []byte(opts),
		Timeout:    10 * time.Second,
	}
}

// collector builds a collector for t and closes it at the end of the test.
func (v *testSim) collector(t collectors.Target) *Collector {
	v.t.Helper()
	c, err := collectors.New(t)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { _ = c.(collectors.Closer).Close(context.Background()) })
	return c.(*Collector)
}

// found fails the test if o (the object of a kind named name) is nil.
func found[T comparable](t testing.TB, o T, kind, name string) T {
	t.Helper()
	var none T
	if o == none {
		t.Fatalf("no %s %s", kind, name)
	}
	return o
}

// vm returns the simulator's VM named name.
func (v *testSim) vm(name string) *simulator.VirtualMachine {
	v.t.Helper()
	return found(v.t, v.VM(name), "VM", name)
}

// host returns the simulator's host named name.
func (v *testSim) host(name string) *simulator.HostSystem {
	v.t.Helper()
	return found(v.t, v.Host(name), "host", name)
}

// cluster returns the simulator's cluster named name.
func (v *testSim) cluster(name string) *simulator.ClusterComputeResource {
	v.t.Helper()
	return found(v.t, v.Cluster(name), "cluster", name)
}

// assignLicence assigns lic to the entity (host or cluster) ref.
func (v *testSim) assignLicence(ref types.ManagedObjectReference, lic types.LicenseManagerLicenseInfo) {
	v.t.Helper()
	if err := v.AssignLicence(ref, lic); err != nil {
		v.t.Fatal(err)
	}
}

// vsanPolicy creates a vSAN storage policy tolerating one failure with the
// given replica preference, and associates it with entities (VM morefs, or
// "vm-N:2000" for a disk).
func (v *testSim) vsanPolicy(name, replica string, vms []string, disks []string) {
	v.t.Helper()
	if err := v.VSANPolicyEntities(context.Background(), name, replica, vms, disks); err != nil {
		v.t.Fatal(err)
	}
}

// newTextLogger logs to w as text, for tests that read the log.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
