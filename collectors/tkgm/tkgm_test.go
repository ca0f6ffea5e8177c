package tkgm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
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
	return s, &collectors.Target{Kind: "vcenter", Endpoint: s.URL(), Username: s.User(), Password: collectors.Secret(s.Password()),
		Thumbprint: s.Thumbprint(), InstanceID: vcUUID, Timeout: 10 * time.Second}
}

func target(u, token, thumb, opts string, paired *collectors.Target) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: simulator.DefaultServiceAccount, Password: collectors.Secret(token), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second, Paired: paired,
	}
}

// kit serves a state and builds a collector pinned to the simulator (not
// paired: the tests pair it).
var kit = collectortest.Kit[simulator.State, *simulator.Server, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.Token, thumb, opts, nil)
	},
	Delay: func(s *simulator.Server, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
}

// start serves a case folder: the management cluster and its vCenter.
func start(t testing.TB, dir, opts string) (*simulator.Server, *Collector) {
	t.Helper()
	st := kit.LoadState(t, filepath.Join(dir, "state.json"))
	_, paired := startVC(t, loadVC(t, filepath.Join(dir, "vcenter.json")))
	return startWith(t, st, opts, paired)
}

func startWith(t testing.TB, st simulator.State, opts string, paired *collectors.Target) (*simulator.Server, *Collector) {
	t.Helper()
	s, c := kit.Start(t, st, opts, func(tg *collectors.Target) { tg.Paired = paired })
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

// TestConformance runs the suite every REST collector passes, on a state of
// several pages. The Kubernetes API has no session (a bearer token on each
// call): the suite's session checks do not apply, the others do (the token
// refused is ErrAuth and not retried, the deadline per call, cancellation,
// certificate pinning, no token in an error).
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"page_size": 2}`, func(t *testing.T, tg *collectors.Target) {
		_, tg.Paired = startVC(t, loadVC(t, "testdata/several-pages/vcenter.json"))
	})
}

func collectByMachine(t *testing.T, c *Collector) map[string]collectors.Observation {
	t.Helper()
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Dims[DimMachine] },
		func(o collectors.Observation) bool {
			return o.Metric != collectors.MetricTanzuVRAM || o.Unit != collectors.UnitMB || o.Edition != Edition ||
				!strings.HasPrefix(o.ObjectKey, vcUUID+"/vm/") || o.Dims[DimRulesVersion] != RulesVersion
		})
}

// TestRules checks the TKGm rules on the case states, independently of the
// golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		_, c := start(t, "testdata/edge-cases", "")
		got := collectByMachine(t, c)
		for m, want := range map[string]float64{
			"tkg-system/tkg-mgmt-control-plane-e1":     4096,
			"edge/edge-k8s-md-0-uppercase":             4096, // provider ID in upper case: joined
			"orphans/gone-k8s-md-0-x":                  1024, // its Cluster is not listed: billed as a workload machine
			"edge/edge-k8s-md-0-provisioning":          0,    // no provider ID
			"edge/edge-k8s-md-0-unknown-vm":            0,    // unjoined
			"edge/edge-k8s-md-0-deleting":              0,    // VM powered off
			"edge/edge-k8s-md-0-suspended":             0,
			"edge/edge-k8s-md-0-aws":                   0, // not vSphere
			"edge/edge-k8s-md-0-uppercase-replacement": 0, // the same VM as another machine: once
		} {
			o, ok := got[m]
			if ok != (want > 0) || o.Quantity != want {
				t.Errorf("%s: observed %v with %v MB, want %v MB", m, ok, o.Quantity, want)
			}
		}
		if r := got["orphans/gone-k8s-md-0-x"].Dims[DimK8sClusterRole]; r != "workload" {
			t.Errorf("role %q", r)
		}
		sum := c.Summary()
		want := Summary{Clusters: 2, Machines: 9, Billed: 3, NotBilled: 2, NoProviderID: 1, OtherInfra: 1,
			Unjoined: []string{"edge/edge-k8s-md-0-unknown-vm"}, Duplicates: 1}
		if !reflect.DeepEqual(sum, want) {
			t.Errorf("summary %+v, want %+v", sum, want)
		}
	})
	t.Run("roles and capped vRAM", func(t *testing.T) {
		_, c := start(t, "testdata/small", "")
		got := collectByMachine(t, c)
		if len(got) != 5 {
			t.Fatalf("%d observations, want 5", len(got))
		}
		cp := got["tkg-system/tkg-mgmt-control-plane-x7k2p"].Dims
		if cp[DimK8sClusterRole] != "management" || cp[DimMachineRole] != "control-plane" || cp["vm"] != "tkg-mgmt-control-plane-x7k2p" {
			t.Errorf("management control plane dims %v", cp)
		}
		if q := got["acme/acme-prod-md-0-7f6c5-fghij"].Quantity; q != collectors.VRAMCapMB {
			t.Errorf("64 GB reserved: %v MB, want the cap", q)
		}
		if d := got["acme/acme-prod-md-0-7f6c5-abcde"].Dims; d[DimK8sClusterRole] != "workload" || d[DimMachineRole] != "worker" || d[DimK8sCluster] != "acme/acme-prod" {
			t.Errorf("workload worker dims %v", d)
		}
	})
	t.Run("cores: each host once", func(t *testing.T) {
		_, c := start(t, "testdata/small", `{"metric": "cores"}`)
		obs, err := c.Collect(context.Background(), hour)
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, o := range obs {
			if o.Metric != collectors.MetricTanzuCores || o.Unit != collectors.UnitCores || !strings.HasPrefix(o.ObjectKey, vcUUID+"/host/") {
				t.Errorf("bad observation %+v", o)
			}
			total += o.Quantity
		}
		if len(obs) != 2 || total != 32+48 {
			t.Fatalf("%d hosts, %v cores; want 2 hosts, 80 cores", len(obs), total)
		}
	})
	t.Run("provider IDs", func(t *testing.T) {
		for in, want := range map[string]string{
			"vsphere://4237a1b2-0000-4000-8000-000000000001":   "4237a1b2-0000-4000-8000-000000000001",
			" VSPHERE://4237A1B2-0000-4000-8000-000000000001 ": "4237A1B2-0000-4000-8000-000000000001",
			"vsphere:///4237a1b2":                              "4237a1b2",
			"vsphere://":                                       "",
			"aws:///eu-west-1a/i-0a1b":                         "",
			"":                                                 "",
		} {
			if got, ok := biosUUID(in); got != want || ok != (want != "") {
				t.Errorf("biosUUID(%q) = %q, %v; want %q", in, got, ok, want)
			}
		}
	})
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	_, paired := startVC(t, loadVC(t, "testdata/several-pages/vcenter.json"))
	for _, tc := range []struct {
		name    string
		faults  simulator.Faults
		timeout time.Duration
		want    []string
		is      error
	}{
		{"500 on page 2", simulator.Faults{FailPage: 2, FailResource: "machines"}, 0,
			[]string{"tkgm 127.0.0.1: machines.cluster.x-k8s.io page 2", "etcdserver: request timed out"}, nil},
		{"malformed provider ID", simulator.Faults{MalformField: "providerID"}, 0,
			[]string{"machines.cluster.x-k8s.io page 1", "machine acme/acme-k8s-control-plane-0: field spec.providerID: expected a string, got a number"}, nil},
		{"malformed cluster name", simulator.Faults{MalformField: "clusterName"}, 0,
			[]string{"field spec.clusterName: expected a string, got an array"}, nil},
		{"malformed labels", simulator.Faults{MalformField: "labels"}, 0,
			[]string{"field metadata.labels: expected an object, got a string"}, nil},
		{"malformed metadata", simulator.Faults{MalformField: "metadata"}, 0,
			[]string{"machines.cluster.x-k8s.io page 1", "metadata"}, nil},
		{"malformed items", simulator.Faults{MalformField: "items"}, 0,
			[]string{"clusters.cluster.x-k8s.io page 1", "items"}, nil},
		{"truncated", simulator.Faults{Truncate: true}, 0, []string{"clusters.cluster.x-k8s.io page 1"}, nil},
		{"continue token given back", simulator.Faults{RepeatContinue: true}, 0,
			[]string{"page 2", "gives back the continue token it was asked with"}, nil},
		{"slow API", simulator.Faults{Delay: 300 * time.Millisecond}, 100 * time.Millisecond,
			[]string{"clusters.cluster.x-k8s.io page 1", "no answer within the 100ms deadline"}, context.DeadlineExceeded},
		{"token expires mid-collection", simulator.Faults{TokenExpiresAfter: 4}, 0,
			[]string{"listing machines.cluster.x-k8s.io", "the bearer token was refused", "the bearer token of " + simulator.DefaultServiceAccount + " is wrong, revoked"},
			collectors.ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := startWith(t, st, `{"page_size": 2}`, paired)
			if tc.timeout > 0 {
				c.t.Timeout = tc.timeout
			}
			s.SetFaults(tc.faults)
			_, err := c.Collect(context.Background(), hour)
			collectortest.WantError(t, err, tc.want, tc.is)
		})
	}
}

// TestEndlessAnswer: an answer without end is refused at the size limit,
// not read until memory runs out.
func TestEndlessAnswer(t *testing.T) {
	defer func(n int64) { maxAnswer = n }(maxAnswer)
	maxAnswer = 4 << 20
	st := kit.LoadState(t, "testdata/small/state.json")
	s, c := startWith(t, st, "", &collectors.Target{Kind: "vcenter", InstanceID: vcUUID})
	s.SetFaults(simulator.Faults{Endless: true})
	_, err := c.Collect(context.Background(), hour)
	collectortest.WantError(t, err, []string{"clusters.cluster.x-k8s.io page 1", "answer too large: more than 4 MiB"}, ErrTooLarge)
}

func TestPaging(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	_, paired := startVC(t, loadVC(t, "testdata/several-pages/vcenter.json"))
	t.Run("continue token expired: listed again once", func(t *testing.T) {
		s, c := startWith(t, st, `{"page_size": 2}`, paired)
		s.SetFaults(simulator.Faults{ExpireContinue: 1})
		if got := collectByMachine(t, c); len(got) != 11 {
			t.Fatalf("%d observations, want 11", len(got))
		}
		s, c = startWith(t, st, `{"page_size": 2}`, paired)
		s.SetFaults(simulator.Faults{ExpireContinue: 2})
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"clusters.cluster.x-k8s.io page 2", "too old"}, nil)
	})
	t.Run("throttled: Retry-After waited out", func(t *testing.T) {
		s, c := startWith(t, st, `{"page_size": 4}`, paired)
		s.SetFaults(simulator.Faults{ThrottleEvery: 3})
		if got := collectByMachine(t, c); len(got) != 11 {
			t.Fatalf("%d observations, want 11", len(got))
		}
	})
	t.Run("one page", func(t *testing.T) {
		s, c := startWith(t, st, `{"page_size": 5000}`, paired)
		if got := collectByMachine(t, c); len(got) != 11 {
			t.Fatalf("%d observations, want 11", len(got))
		}
		if n := s.Calls(); n != 2 {
			t.Errorf("%d calls for two lists of one page each", n)
		}
	})
	t.Run("not a management cluster", func(t *testing.T) {
		nc := st
		nc.NoClusterAPI = true
		_, c := startWith(t, nc, "", paired)
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"clusters.cluster.x-k8s.io/v1beta1 is not served", "is the endpoint the TKG management cluster, not a workload cluster?"}, nil)
	})
}

// TestToken: a refused token is ErrAuth, one call an hour, never retried
// within it; a bound token's expiry is said; the token is in no error.
func TestToken(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	_, paired := startVC(t, loadVC(t, "testdata/small/vcenter.json"))
	expired := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st.Token = simulator.ServiceAccountToken(simulator.DefaultServiceAccount, expired)
	s, c := startWith(t, st, "", paired)
	for range 2 {
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"expired at 2026-01-02T03:04:05Z", "kubectl create token"}, ErrToken)
		if !errors.Is(err, collectors.ErrBadCredentials) || strings.Contains(err.Error(), st.Token) {
			t.Fatalf("error %v", err)
		}
	}
	if s.Calls() != 2 {
		t.Errorf("%d calls in two hours with a refused token, want 2", s.Calls())
	}
	// A new token: the admin updates the product.
	fresh := simulator.ServiceAccountToken(simulator.DefaultServiceAccount, time.Now().Add(24*time.Hour))
	s.SetToken(fresh)
	tgt := c.t
	tgt.Password = collectors.Secret(fresh)
	c2, err := newCollector(tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	if got := collectByMachine(t, c2); len(got) != 5 {
		t.Fatalf("%d observations with a fresh token", len(got))
	}
	// Revoked before its expiry.
	s.SetToken("another")
	_, err = c2.Collect(context.Background(), hour)
	collectortest.WantError(t, err, []string{"is revoked, or its service account was deleted"}, collectors.ErrAuth)
}

func TestBadInput(t *testing.T) {
	vc := &collectors.Target{Kind: "vcenter", Endpoint: "https://vc01.example", Username: "u", Password: "p", InstanceID: vcUUID}
	for _, tc := range []struct {
		name   string
		edit   func(*collectors.Target)
		want   string
		wantIs error
	}{
		{"not paired", func(t *collectors.Target) { t.Paired = nil }, "must be paired", ErrNotPaired},
		{"paired with a vCenter of unknown identity", func(t *collectors.Target) { t.Paired = &collectors.Target{Kind: "vcenter"} }, "must be paired", ErrNotPaired},
		{"http endpoint", func(t *collectors.Target) { t.Endpoint = "http://mgmt.example:6443" }, "scheme must be https", nil},
		{"no token", func(t *collectors.Target) { t.Password = "" }, "the bearer token of the service account is required", nil},
		{"bad metric", func(t *collectors.Target) { t.Options = json.RawMessage(`{"metric": "pods"}`) }, `metric "pods": must be "vram" or "cores"`, nil},
		{"bad CA", func(t *collectors.Target) { t.Options = json.RawMessage(`{"ca": "bm90IGEgY2VydA=="}`) }, "ca: no PEM certificate in it", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := target("https://mgmt.example:6443", "tok", "", "", vc)
			tc.edit(&tgt)
			_, err := collectors.New(tgt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("paired with another vCenter", func(t *testing.T) {
		_, paired := startVC(t, loadVC(t, "testdata/small/vcenter.json"))
		paired.InstanceID = "5003c0de-0000-4000-8000-00000000ffff"
		_, c := startWith(t, kit.LoadState(t, "testdata/small/state.json"), "", paired)
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"reading the paired vCenter", "is now instance " + vcUUID + ", not 5003c0de-0000-4000-8000-00000000ffff"}, nil)
	})
	t.Run("paired vCenter refuses its password", func(t *testing.T) {
		_, paired := startVC(t, loadVC(t, "testdata/small/vcenter.json"))
		paired.Password = "wrong"
		_, c := startWith(t, kit.LoadState(t, "testdata/small/state.json"), "", paired)
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"reading the paired vCenter", "incorrect user name or password"}, collectors.ErrAuth)
	})
}

// TestCA: the API server's CA given as option ca (PEM, or base64 as in a
// kubeconfig) is trusted without a pinned thumbprint; another CA is not.
func TestCA(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	_, paired := startVC(t, loadVC(t, "testdata/small/vcenter.json"))
	s := simulator.New(st)
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// httptest's certificate is for 127.0.0.1 and example.com, signed by itself.
	pemCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	for name, ca := range map[string]string{"PEM": pemCA, "base64": base64.StdEncoding.EncodeToString([]byte(pemCA))} {
		opts, _ := json.Marshal(map[string]string{"ca": ca})
		c, err := newCollector(target(srv.URL, st.Token, "", string(opts), paired))
		if err != nil {
			t.Fatal(err)
		}
		if got := collectByMachine(t, c); len(got) != 5 {
			t.Fatalf("%s CA: %d observations", name, len(got))
		}
		_ = c.Close(context.Background())
	}
	c, err := newCollector(target(srv.URL, st.Token, "", "", paired))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Collect(context.Background(), hour)
	var ce *tlsutil.CertError
	if !errors.As(err, &ce) || !errors.Is(err, tlsutil.ErrUntrusted) {
		t.Fatalf("no CA, no thumbprint: %v", err)
	}
}

// TestNoSecretsLogged: the token is in no log line and no error, at debug
// level, through a collection and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/edge-cases/state.json")
	_, paired := startVC(t, loadVC(t, "testdata/edge-cases/vcenter.json"))
	s := simulator.New(st)
	u, thumb := s.Start(t)
	var buf bytes.Buffer
	tg := target(u, st.Token, thumb, "", paired)
	tg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := collectors.New(tg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	s.SetFaults(simulator.Faults{Warning: "cluster.x-k8s.io/v1beta1 Machine is deprecated; use cluster.x-k8s.io/v1beta2 Machine"})
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "the Kubernetes API warns"); n != 1 {
		t.Errorf("the warning of every page logged %d times in one collection, want once", n)
	}
	s.SetToken("rotated")
	_, err = c.Collect(context.Background(), hour)
	if !errors.Is(err, ErrToken) {
		t.Fatalf("error %v", err)
	}
	collectortest.NoSecretIn(t, buf.String(), err, st.Token, paired.Password.Reveal())
	for _, want := range []string{"no_provider_id=1", "unjoined=1", "edge/edge-k8s-md-0-unknown-vm", "other_infrastructure=1",
		`warning="cluster.x-k8s.io/v1beta1 Machine is deprecated`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, buf.String())
		}
	}
}

func TestIdentify(t *testing.T) {
	_, c := start(t, "testdata/small", "")
	id, err := c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.InstanceID != "0b6c5a9e-3d1f-4a2b-9c8d-7e6f5a4b3c2d" || id.Name != "tkg-system/tkg-mgmt" || id.Version != "v1.30.2+vmware.1" {
		t.Fatalf("Identify = %+v", id)
	}
	s, c := start(t, "testdata/empty", "")
	if id, err := c.Identify(context.Background()); err != nil || id.InstanceID != "" || id.Name != "127.0.0.1" {
		t.Fatalf("no Cluster objects: Identify = %+v, %v", id, err)
	}
	s.SetToken("other")
	if _, err := c.Identify(context.Background()); !errors.Is(err, ErrToken) {
		t.Fatalf("refused token: %v", err)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"metric": "cores", "page_size": 100}`, ""},
		{`{"metric": "vcpu"}`, `metric "vcpu": must be "vram" or "cores"`},
		{`{"page_size": 9000}`, "page_size 9000: must be between 1 and 5000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 5000"},
		{`{"tanzu_metric": "cores"}`, `unknown option "tanzu_metric" (known: metric, page_size, ca)`},
		{`{"page_size": "10"}`, "option page_size: expected a int"},
		{`{"ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}`, "ca: no PEM certificate in it"},
		{`{"ca": "%%%"}`, "ca: neither PEM nor base64 of PEM"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.Metric == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
}

// TestPairedSessionKept: the paired vCenter is logged in to once across
// hours, and Close logs out.
func TestPairedSessionKept(t *testing.T) {
	vc, paired := startVC(t, loadVC(t, "testdata/small/vcenter.json"))
	_, c := startWith(t, kit.LoadState(t, "testdata/small/state.json"), "", paired)
	base := vc.Logins() // the simulator's own session, for the inventory edits
	for range 3 {
		if got := collectByMachine(t, c); len(got) != 5 {
			t.Fatalf("%d observations", len(got))
		}
	}
	if n := vc.Logins() - base; n != 1 {
		t.Errorf("%d vCenter logins in three hours, want 1", n)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := collectByMachine(t, c); len(got) != 5 || vc.Logins()-base != 2 {
		t.Errorf("after Close: %d observations, %d logins", len(got), vc.Logins()-base)
	}
}
