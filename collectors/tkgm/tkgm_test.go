package tkgm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// vcUUID is the instance UUID of the case folders' vCenter.
const vcUUID = "5003c0de-aaaa-4bbb-8ccc-0000000000a1"

// vcState is a case folder's vcenter.json: the paired vCenter's hosts and
// VMs, created in govmomi's simulator (one cluster).
type vcState struct {
	Hosts []struct {
		Packages int16 `json:"packages"`
		Cores    int16 `json:"cores_per_package"`
	} `json:"hosts"`
	VMs []vcVM `json:"vms"`
}

type vcVM struct {
	Name          string `json:"name"`
	BIOSUUID      string `json:"bios_uuid"`
	InstanceUUID  string `json:"instance_uuid"`
	MemoryMB      int32  `json:"memory_mb"`
	ReservationMB int64  `json:"reservation_mb,omitempty"`
	Power         string `json:"power,omitempty"` // poweredOn (default), poweredOff, suspended
	Template      bool   `json:"template,omitempty"`
	Host          int    `json:"host"` // index in hosts
}

func loadVC(t testing.TB, path string) vcState {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st vcState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return st
}

// startVC serves st in a vCenter simulator and returns the paired target.
func startVC(t testing.TB, st vcState) (*vcsim.Simulator, *collectors.Target) {
	t.Helper()
	hosts := max(len(st.Hosts), 1)
	s, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: hosts, InstanceUUID: vcUUID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	hs := s.Hosts()
	for i, h := range st.Hosts {
		s.SetCores(hs[i], h.Packages, h.Cores)
	}
	ctx := context.Background()
	for _, v := range st.VMs {
		power := types.VirtualMachinePowerState(v.Power)
		if power == "" {
			power = types.VirtualMachinePowerStatePoweredOn
		}
		if _, err := s.CreateVM(ctx, vcsim.VMSpec{Name: v.Name, Host: hs[v.Host], MemoryMB: v.MemoryMB, ReservationMB: v.ReservationMB,
			PowerState: power, Template: v.Template, BIOSUUID: v.BIOSUUID, InstanceUUID: v.InstanceUUID}); err != nil {
			t.Fatal(err)
		}
	}
	return s, &collectors.Target{Kind: "vcenter", Endpoint: s.URL(), Username: s.User(), Password: config.Secret(s.Password()),
		Thumbprint: s.Thumbprint(), InstanceID: vcUUID, Timeout: 10 * time.Second}
}

func target(u, token, thumb, opts string, paired *collectors.Target) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: simulator.DefaultServiceAccount, Password: config.Secret(token), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second, Paired: paired,
	}
}

func loadState(t testing.TB, path string) simulator.State {
	t.Helper()
	return collectortest.LoadState(t, path, simulator.LoadState)
}

// start serves a case folder: the management cluster and its vCenter.
func start(t testing.TB, dir, opts string) (*simulator.Server, *Collector) {
	t.Helper()
	st := loadState(t, filepath.Join(dir, "state.json"))
	_, paired := startVC(t, loadVC(t, filepath.Join(dir, "vcenter.json")))
	return startWith(t, st, opts, paired)
}

func startWith(t testing.TB, st simulator.State, opts string, paired *collectors.Target) (*simulator.Server, *Collector) {
	t.Helper()
	s := simulator.New(st)
	u, thumb := s.Start(t)
	c, err := newCollector(target(u, st.Token, thumb, opts, paired))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return s, c
}

// TestCases walks testdata/<case>/: state.json (the management cluster),
// vcenter.json (the paired vCenter), optional options.json, expected.json
// (observations sorted by object key; -update rewrites it), or error.txt:
// the collection fails with an error holding each of its lines.
func TestCases(t *testing.T) {
	collectortest.Cases(t, func(t *testing.T, dir string) {
		_, c := start(t, dir, collectortest.Options(dir))
		if b, err := os.ReadFile(filepath.Join(dir, "error.txt")); err == nil {
			_, err := c.Collect(context.Background(), hour)
			collectortest.WantError(t, err, strings.Split(strings.TrimSpace(string(b)), "\n"), nil)
			return
		}
		collectortest.Golden(t, dir, c, hour)
	})
}
