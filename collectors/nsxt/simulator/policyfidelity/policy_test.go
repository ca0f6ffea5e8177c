package policyfidelity

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/protocol/client"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/security"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains/groups/members"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains/security_policies"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/segments"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/search"

	sim "github.com/usagemeter/usagemeter/collectors/nsxt/simulator"
)

func state() sim.State {
	st := sim.State{User: "admin", Password: "VMware1!VMware1!",
		Tier1s: []sim.Tier1{{ID: "t1", Tier0: "/infra/tier-0s/t0"}},
		Groups: []sim.Group{{ID: "web-vms"}},
		Policies: []sim.Policy{{ID: "web", Name: "Web", Category: "Application",
			Rules: []sim.Rule{{ID: "allow-https", Sources: []string{"/infra/domains/default/groups/web-vms"}}, {ID: "deny", Action: "DROP"}}}},
		IDSPolicies: []sim.Policy{{ID: "ids", Name: "IDS", Rules: []sim.Rule{{ID: "detect"}}}},
		LBPools:     []sim.LBPool{{ID: "web-pool", MemberGroup: "/infra/domains/default/groups/web-vms"}},
		VPNs:        []sim.VPN{{ID: "ipsec-1", Type: "IPSecVpnService", Gateway: "/infra/tier-1s/t1"}},
	}
	for i := range 5 {
		st.Segments = append(st.Segments, sim.Segment{ID: fmt.Sprintf("seg-%d", i), Name: fmt.Sprintf("segment %d", i), Connectivity: "/infra/tier-1s/t1"})
	}
	for i := range 7 {
		id := fmt.Sprintf("5010%04d-0000-0000-0000-000000000000", i)
		st.VMs = append(st.VMs, sim.VM{ExternalID: id, Name: fmt.Sprintf("vm-%d", i), PowerState: "VM_RUNNING", HostID: "h1",
			Moref: fmt.Sprintf("vm-%d", 10+i), NICs: []sim.NIC{{Segment: "seg-0"}}})
		if i < 3 {
			st.Groups[0].Members = append(st.Groups[0].Members, id)
		}
	}
	return st
}

// connector is the bindings' REST connector with Basic credentials.
func connector(t *testing.T) client.Connector {
	t.Helper()
	base, _ := sim.New(state()).Start(t)
	hc := http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	c := client.NewRestConnector(base, hc)
	c.SetSecurityContext(security.NewUserPasswordSecurityContext("admin", "VMware1!VMware1!"))
	return c
}

func ptr[T any](v T) *T { return &v }

func TestPolicySegmentsPagingAndIncludedFields(t *testing.T) {
	c := connector(t)
	sc := infra.NewSegmentsClient(c)
	var names []string
	var cursor *string
	for {
		res, err := sc.List(cursor, nil, nil, ptr(int64(2)), nil, nil, nil)
		if err != nil {
			t.Fatalf("segments: %v", err)
		}
		for _, s := range res.Results {
			names = append(names, *s.DisplayName)
		}
		if res.Cursor == nil || *res.Cursor == "" {
			break
		}
		cursor = res.Cursor
	}
	if len(names) != 5 {
		t.Fatalf("segments over pages of 2: %v", names)
	}
	res, err := sc.List(nil, nil, ptr("id,display_name"), nil, nil, nil, nil)
	if err != nil || len(res.Results) != 5 {
		t.Fatalf("segments, included_fields: %v", err)
	}
	if s := res.Results[0]; s.Id == nil || s.DisplayName == nil || s.Path != nil || s.ConnectivityPath != nil {
		t.Fatalf("included_fields=id,display_name: %+v", s)
	}
	ports, err := segments.NewPortsClient(c).List("seg-0", nil, nil, nil, nil, nil, nil)
	if err != nil || len(ports.Results) != 7 || ports.Results[0].Attachment == nil || ports.Results[0].Attachment.Id == nil {
		t.Fatalf("ports of seg-0: %d %v", len(ports.Results), err)
	}
	if _, err := segments.NewPortsClient(c).List("nope", nil, nil, nil, nil, nil, nil); err == nil {
		t.Fatal("ports of an unknown segment: no error")
	}
}

func TestPolicySecurityAndServices(t *testing.T) {
	c := connector(t)
	pols, err := domains.NewSecurityPoliciesClient(c).List("default", nil, nil, nil, nil, nil, nil, nil)
	if err != nil || len(pols.Results) != 1 || *pols.Results[0].Category != "Application" {
		t.Fatalf("security policies: %v", err)
	}
	rules, err := security_policies.NewRulesClient(c).List("default", "web", nil, nil, nil, nil, nil, nil)
	if err != nil || len(rules.Results) != 2 || rules.Results[0].SourceGroups[0] != "/infra/domains/default/groups/web-vms" || *rules.Results[1].Action != "DROP" {
		t.Fatalf("rules: %v", err)
	}
	vms, err := members.NewVirtualMachinesClient(c).List("default", "web-vms", nil, nil, nil, nil, nil, nil, nil)
	if err != nil || len(vms.Results) != 3 {
		t.Fatalf("group members: %d %v", len(vms.Results), err)
	}
	t1, err := infra.NewTier1sClient(c).List(nil, nil, nil, nil, nil, nil)
	if err != nil || len(t1.Results) != 1 || *t1.Results[0].Tier0Path != "/infra/tier-0s/t0" {
		t.Fatalf("tier-1s: %v", err)
	}
	pools, err := infra.NewLbPoolsClient(c).List(nil, nil, nil, nil, nil, nil)
	if err != nil || len(pools.Results) != 1 || pools.Results[0].MemberGroup == nil || *pools.Results[0].MemberGroup.GroupPath != "/infra/domains/default/groups/web-vms" {
		t.Fatalf("lb pools: %v", err)
	}
	hits, err := search.NewQueryClient(c).List("resource_type:IPSecVpnService", nil, nil, nil, nil, nil)
	if err != nil || len(hits.Results) != 1 {
		t.Fatalf("search: %v", err)
	}
}
