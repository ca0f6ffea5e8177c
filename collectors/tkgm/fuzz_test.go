package tkgm

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
	"github.com/usagemeter/usagemeter/collectors/vcenter"
)

// fakeVMs is a vCenter lookup without a vCenter, for the fuzz tests and
// the benchmark: every BIOS UUID it holds bills 4 GB on one of 8 hosts.
type fakeVMs map[string]vcenter.BilledVM

func (f fakeVMs) InstanceUUID() string { return vcUUID }
func (f fakeVMs) VM(uuid string) (vcenter.BilledVM, bool) {
	v, ok := f[strings.ToLower(uuid)]
	return v, ok
}

func (f fakeVMs) add(bios string, i int) {
	h := i % 8
	f[strings.ToLower(bios)] = vcenter.BilledVM{Key: vcUUID + "/vm/" + bios, BIOSUUID: bios, Billed: i%10 != 9, VRAMMB: 4096,
		Dims:    map[string]string{"vm": bios, "vcenter": "vc01", "host": "esx", "cluster": "c1", "datacenter": "dc", "folder": "/dc/vm", "resource_pool": "Resources"},
		HostKey: vcUUID + "/host/host-" + string(rune('0'+h)), HostCores: 32, HostDims: map[string]string{"host": "esx", "cluster": "c1"}}
}

// simBody is what the simulator answers to GET path for st.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://mgmt.example:6443"+path, nil)
	req.Header.Set("Authorization", "Bearer "+st.Token)
	rec := httptest.NewRecorder()
	simulator.New(st).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func seedStates(f *testing.F) []simulator.State {
	var sts []simulator.State
	for _, dir := range collectortest.Dirs(f) {
		st := kit.LoadState(f, filepath.Join(dir, "state.json"))
		st.Forbidden = nil // the 403 case's lists are seeds too
		sts = append(sts, st)
	}
	return sts
}

// FuzzParseMachineList: a page of the machine list as the dynamic client
// decodes it, each machine read, then the join and the rules on them.
func FuzzParseMachineList(f *testing.F) {
	for _, st := range seedStates(f) {
		f.Add(simBody(f, st, simulator.APIPath+"/machines"))
		f.Add(simBody(f, st, simulator.APIPath+"/machines?limit=2"))
	}
	f.Add([]byte(`{"apiVersion":"cluster.x-k8s.io/v1beta1","kind":"MachineList","metadata":{"continue":"x"},"items":[{"metadata":{"name":"m","namespace":"n","labels":{"cluster.x-k8s.io/control-plane":""}},"spec":{"providerID":"vsphere://ABC","clusterName":"c"}}]}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Status","status":"Failure","code":500}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeList(b)
		if err != nil {
			return
		}
		var ms []machine
		vms := fakeVMs{}
		for i := range l.Items {
			m, err := parseMachine(&l.Items[i])
			if err != nil {
				if !strings.Contains(err.Error(), "field ") {
					t.Fatalf("unhelpful error %v", err)
				}
				return
			}
			ms = append(ms, m)
			if u, ok := biosUUID(m.providerID); ok && i%2 == 0 {
				vms.add(u, i)
			}
		}
		for _, metric := range []string{MetricVRAM, MetricCores} {
			obs, sum := build("mgmt", metric, nil, ms, vms)
			if sum.Billed+sum.NotBilled+sum.NoProviderID+sum.OtherInfra+len(sum.Unjoined)+sum.Duplicates != len(ms) {
				t.Fatalf("summary %+v does not add up to %d machines", sum, len(ms))
			}
			if len(obs) > sum.Billed {
				t.Fatalf("%d observations from %d billed machines", len(obs), sum.Billed)
			}
			seen := map[string]bool{}
			for _, o := range obs {
				if seen[o.ObjectKey] || o.Edition != Edition || (metric == MetricVRAM) != (o.Metric == collectors.MetricTanzuVRAM) {
					t.Fatalf("bad observation %+v", o)
				}
				seen[o.ObjectKey] = true
			}
		}
	})
}

// FuzzParseClusterList: a page of the cluster list.
func FuzzParseClusterList(f *testing.F) {
	for _, st := range seedStates(f) {
		f.Add(simBody(f, st, simulator.APIPath+"/clusters"))
		f.Add(simBody(f, st, simulator.APIPath+"/clusters?limit=1"))
	}
	f.Add([]byte(`{"apiVersion":"cluster.x-k8s.io/v1beta1","kind":"ClusterList","items":[{"metadata":{"name":"","labels":null}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeList(b)
		if err != nil {
			return
		}
		for i := range l.Items {
			c, err := parseCluster(&l.Items[i])
			if err != nil {
				if !strings.Contains(err.Error(), "field ") {
					t.Fatalf("unhelpful error %v", err)
				}
				continue
			}
			if c.name == "" {
				t.Fatal("a cluster without a name accepted")
			}
		}
	})
}

// FuzzToken: the token's expiry claim and the provider IDs are read from
// what the cluster and the admin give; neither panics.
func FuzzToken(f *testing.F) {
	f.Add(simulator.ServiceAccountToken(simulator.DefaultServiceAccount, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), "vsphere://4237a1b2")
	f.Add("a.eyJleHAiOiIxMjMifQ.c", "VSPHERE:///")
	f.Add("a.eyJleHAiOjEuNWUxMH0.c", "aws:///i-1")
	f.Fuzz(func(t *testing.T, tok, pid string) {
		if exp := tokenExpiry(tok); !exp.IsZero() && exp.Unix() <= 0 {
			t.Fatalf("expiry %v from %q", exp, tok)
		}
		if u, ok := biosUUID(pid); ok != (u != "") || strings.Contains(u, "://") && !strings.Contains(pid[len(providerPrefix):], "://") {
			t.Fatalf("biosUUID(%q) = %q, %v", pid, u, ok)
		}
	})
}
